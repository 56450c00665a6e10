"""schemathesis against the API's own OpenAPI document: no input makes it answer 5xx.

The real app, served by waitress on loopback, on a world with targets,
incidents (open, acknowledged, resolved), a silence and a maintenance window.
schemathesis (its CLI, in a subprocess, as anyone would run it) loads
``/api/v1/openapi.json`` with a real admin token and runs its phases
(examples, coverage, fuzzing, stateful) over every operation: valid and
invalid path parameters, query strings and bodies. Every answer must be no
server error, a status and content type the document lists, a body of the
documented shape; schema-invalid input must be refused (4xx), an operation
must refuse a call without the token, and an undocumented method must be a 405.

Deterministic (``generation.deterministic``) so CI sends the same inputs every
run; ``MAX_EXAMPLES`` per operation keeps it well under a minute here. To
search harder (random, more examples), see docs/api.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor import incident_actions
from monitor.store.repository import StateRepository
from tests.test_web_support import (
    World,
    add_incident,
    add_targets,
    make_config,
    make_world,
    standard_rows,
)
from web.server import ServerHandle, serve

MAX_EXAMPLES = int(os.environ.get("DIALWATCH_SCHEMATHESIS_EXAMPLES", "30"))
SEED = os.environ.get("DIALWATCH_SCHEMATHESIS_SEED", "")
"""Empty: deterministic (CI). A number: random generation from that seed (a harder search)."""
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "ignored_auth",
    "unsupported_method",
)
TARGETS = ("trunk-a", "trunk-b", "crm-db", "router")


def populate(world: World) -> None:
    """Targets, three incidents (open, acknowledged, resolved), a silence and a window."""
    add_targets(world.db, standard_rows())
    now = time.time()
    add_incident(world.db, ["trunk-a", "router"], title="Carrier A down")
    add_incident(
        world.db, ["crm-db"], acknowledged_at=now - 30, acknowledged_by="user:opal", cause="disk"
    )
    add_incident(world.db, ["trunk-b"], state="resolved")
    repo = StateRepository(world.db)
    incident_actions.silence(repo, "user:opal", target_id="trunk-b", duration=3600)
    incident_actions.start_maintenance(repo, "user:opal", "router", reason="swap")


def config_toml(token: str) -> str:
    """schemathesis.toml: the token, the budget, and known ids mixed into generated ones (so
    calls reach the actions, not only the 404 for an unknown id)."""
    known = {
        "incidents": "[1, 2, 3]",
        "targets": "[" + ", ".join(f'"{t}"' for t in TARGETS) + "]",
        "components": '["outbound", "crm"]',
    }
    uses = {
        "path.incident_id": "incidents",
        "path.silence_id": "incidents",
        "path.window_id": "incidents",
        "path.target_id": "targets",
        "body.incident_id": "incidents",
        "body.target_id": "targets",
        "body.component_id": "components",
        "body.targets[*]": "targets",
        "body.components[*]": "components",
        "query.target": "targets",
        "query.component": "components",
    }
    lines = [
        f'headers = {{ Authorization = "Bearer {token}" }}',
        "[generation]",
        f"max-examples = {MAX_EXAMPLES}",
        "deterministic = true" if not SEED else "deterministic = false",
    ]
    if SEED:
        lines.insert(0, f"seed = {int(SEED)}")
    for name, values in known.items():
        lines += [f"[dictionaries.{name}]", f"values = {values}"]
    lines.append("[parameters]")
    lines += [f'"{key}" = {{ dictionary = "{d}", probability = 0.5 }}' for key, d in uses.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[World, ServerHandle]]:
    # The port is known only once bound: allow the loopback name on any port.
    world = make_world(
        tmp_path / "world",
        config=make_config(web={"allowed_hosts": ["127.0.0.1"]}),
        reload=lambda *_: [],
    )
    populate(world)
    handle = serve(world.app, "127.0.0.1", 0)
    yield world, handle
    handle.close()


def test_no_generated_input_makes_the_api_fail(
    tmp_path: Path, served: tuple[World, ServerHandle]
) -> None:
    world, handle = served
    config = tmp_path / "schemathesis.toml"
    config.touch(mode=0o600)  # it holds a token
    config.write_text(config_toml(world.tokens["admin"]))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(config),
            "run",
            f"{handle.url}/api/v1/openapi.json",
            "--checks",
            ",".join(CHECKS),
            "--workers",
            "1",
            "--no-color",
        ],
        cwd=tmp_path,  # its .schemathesis/ cache stays in the temp dir
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-20000:]
    # It ran, over every operation of the document.
    paths = world.client("viewer").get("/api/v1/openapi.json").get_json()["paths"]
    operations = sum(len([m for m in item if m != "parameters"]) for item in paths.values())
    tested = operations - 1  # schemathesis leaves out the route of the document it reads
    assert tested >= 17
    assert f"{tested} selected / {tested} total" in report, report[-3000:]
    assert "passed" in report and "Test cases:" in report, report[-3000:]
