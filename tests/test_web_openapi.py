"""The OpenAPI document describes every API route of the app, from its url_map.

A route added without its line in ``web.openapi.DOCS`` fails here (and
schemathesis, which reads the document, would never test it).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_web_support import World, make_world
from web import api_incidents, openapi

_ARG = re.compile(r"<(?:[a-z]+(?:\([^)]*\))?:)?([A-Za-z_][A-Za-z0-9_]*)>")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(Path(tmp_path_factory.mktemp("openapi")), reload=lambda *_: [])


@pytest.fixture(scope="module")
def document(world: World) -> dict:
    r = world.client("viewer").get("/api/v1/openapi.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    return r.get_json()


def api_rules(world: World) -> list[tuple[str, str, str]]:
    """(endpoint, METHOD, /path/{arg}) of every /api/ rule and /healthz."""
    found = []
    for rule in world.app.url_map.iter_rules():
        if rule.rule.startswith("/api/") or rule.rule == "/healthz":
            path = _ARG.sub(lambda m: "{" + m.group(1) + "}", rule.rule)
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                found.append((rule.endpoint, method, path))
    return found


def test_every_api_route_of_the_app_is_in_the_document(world: World, document: dict) -> None:
    rules = api_rules(world)
    assert len([r for r in rules if r[2].startswith("/api/v1/")]) >= 17
    missing = [
        (endpoint, method, path)
        for endpoint, method, path in rules
        if method.lower() not in document["paths"].get(path, {})
    ]
    assert missing == [], "add these routes to web.openapi.DOCS"


def test_the_document_lists_nothing_the_app_does_not_have(world: World, document: dict) -> None:
    rules = {(method.lower(), path) for _e, method, path in api_rules(world)}
    listed = {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert listed == rules
    endpoints = {e for e, _m, _p in api_rules(world)}
    assert set(openapi.DOCS) <= endpoints, set(openapi.DOCS) - endpoints


def test_request_bodies_are_the_json_schemas_of_the_models_the_routes_parse(
    document: dict,
) -> None:
    schemas = document["components"]["schemas"]
    for model in set(api_incidents.ROUTE_BODIES.values()):
        assert schemas[model.__name__] == model.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        assert schemas[model.__name__]["additionalProperties"] is False
    ack = document["paths"]["/api/v1/incidents/{incident_id}/ack"]["post"]
    assert ack["requestBody"]["required"] is False  # no body needed
    patch = document["paths"]["/api/v1/incidents/{incident_id}"]["patch"]
    assert patch["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/IncidentPatch"
    }
    assert set(patch["responses"]) >= {"200", "400", "401", "403", "404", "409"}


def test_ids_in_paths_are_bounded_integers(document: dict) -> None:
    item = document["paths"]["/api/v1/silences/{silence_id}/lift"]
    assert item["parameters"] == [
        {
            "name": "silence_id",
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": 10**18 - 1},
        }
    ]


def test_every_refusal_has_the_error_shape(document: dict) -> None:
    responses = document["components"]["responses"]
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            for code, answer in op["responses"].items():
                if int(code) >= 400:
                    name = answer["$ref"].rsplit("/", 1)[1]
                    schema = responses[name]["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (path, method, code)


def test_only_healthz_is_public_in_the_document(document: dict) -> None:
    public = [
        (path, method)
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method != "parameters" and op.get("security") == []
    ]
    assert public == [("/healthz", "get")]
    assert document["security"] == [{"token": []}]


def test_the_document_is_for_staff_only(world: World) -> None:
    r = world.anonymous().get("/api/v1/openapi.json")
    assert r.status_code == 401 and "Bearer" in r.get_json()["error"]
    assert world.client("viewer").get("/api/v1/openapi.json?x=1").status_code == 400
