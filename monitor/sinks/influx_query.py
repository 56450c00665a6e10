"""Reading metrics back from InfluxDB with InfluxQL, for the dashboard's charts.

``InfluxQLMetricsQuery`` follows ``monitor.metrics_query.MetricsQuery``: the
same ``series`` and ``latest`` answers the embedded store gives, read over
``/query`` — which InfluxDB 1.x has, 2.x has with a DBRP mapping for the
bucket, and 3.x has natively. Downsampling is done by the server
(``GROUP BY time(...)`` with ``min``/``max``/``mean``), so a chart of a week
costs one small answer.

It only reads, over ``InfluxHttp`` (the one HTTP client, ``core.net.http``),
and raises ``monitor.metrics_query.QueryError`` when InfluxDB cannot answer.
Which query backend the dashboard uses (this one when InfluxDB
is configured and answers, else the embedded store) is the app's choice.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from core.net.http import HttpFailure
from monitor.metrics_query import QueryError, Series
from monitor.points import STANDARD_TAGS
from monitor.sinks.influx_http import InfluxHttp, server_message, transport_failure

ANSWER_MAX_BYTES = 32 * 1024**2
"""The largest answer read. A chart's answer is at most ``max_points`` per series;
this only bounds a runaway one (a tag set far wider than a chart shows), which
fails as a QueryError instead of filling the web worker's memory."""

_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    """An InfluxQL string literal in single quotes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def where_clause(target_id: str, start: float, end: float, tags: Mapping[str, str] | None) -> str:
    """``WHERE`` for one target, extra tag equalities and ``[start, end]`` (epoch s)."""
    parts = [f'"target" = {quote_string(target_id)}']
    parts += [f"{quote_ident(k)} = {quote_string(v)}" for k, v in sorted((tags or {}).items())]
    parts.append(f"time >= {int(start * 1e9)} AND time <= {int(end * 1e9)}")
    return "WHERE " + " AND ".join(parts)


def bucket_ms(start: float, end: float, max_points: int) -> int:
    """Width of a ``GROUP BY time()`` bucket giving at most ``max_points`` buckets."""
    return max(1, math.ceil((end - start) * 1000 / max(max_points, 1)))


def _series_tags(series: Mapping[str, Any]) -> dict[str, str]:
    return {k: v for k, v in (series.get("tags") or {}).items() if v}


class InfluxQLMetricsQuery:
    """``MetricsQuery`` over InfluxDB's ``/query``. Safe to share between threads."""

    def __init__(
        self,
        url: str,
        database: str,
        *,
        retention_policy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        verify_tls: bool = True,
        ca_file: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.retention_policy = retention_policy
        self._server = InfluxHttp(
            self.url,
            username=username,
            password=password,
            token=token,
            timeout=timeout,
            verify_tls=verify_tls,
            ca_file=ca_file,
        )
        self._field_types: dict[str, dict[str, str]] = {}

    # -- HTTP --------------------------------------------------------------
    def query(self, q: str) -> list[dict[str, Any]]:
        """Run one InfluxQL statement; its series (empty list when none)."""
        params = {"db": self.database, "q": q, "epoch": "ms"}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        try:
            answer = self._server.post(
                "/query", urlencode(params).encode(), _FORM, ANSWER_MAX_BYTES
            )
        except HttpFailure as failure:
            raise QueryError(f"{self.url}: {transport_failure(failure)}") from None
        if answer.status != 200:
            message = server_message(answer.body, f"HTTP {answer.status}")
            raise QueryError(f"{self.url}: HTTP {answer.status}: {message}")
        data = json.loads(answer.body)
        result = (data.get("results") or [{}])[0]
        if "error" in result:
            raise QueryError(f"{self.url}: {result['error']}")
        return result.get("series", [])

    def _measurement(self, measurement: str) -> str:
        if self.retention_policy:
            return f"{quote_ident(self.retention_policy)}.{quote_ident(measurement)}"
        return quote_ident(measurement)

    def field_type(self, measurement: str, field: str) -> str | None:
        """``float``, ``integer``, ``boolean``, ``string``, or None when unknown."""
        known = self._field_types.get(measurement)
        if known is None or field not in known:
            rows = self.query(f"SHOW FIELD KEYS FROM {self._measurement(measurement)}")
            known = {name: kind for s in rows for name, kind in s["values"]}
            self._field_types[measurement] = known
        return known.get(field)

    # -- MetricsQuery ------------------------------------------------------
    def series(
        self,
        target_id: str,
        measurement: str,
        field: str,
        start: float,
        end: float,
        max_points: int = 300,
        tags: Mapping[str, str] | None = None,
    ) -> list[Series]:
        if end < start:
            raise ValueError("end must not be before start")
        max_points = max(max_points, 1)
        kind = self.field_type(measurement, field)
        if kind is None:
            return []
        source = self._measurement(measurement)
        where = where_clause(target_id, start, end, tags)
        f = quote_ident(field)
        counts = self.query(f"SELECT count({f}) FROM {source} {where} GROUP BY *")
        if not counts:
            return []
        most = max(int(s["values"][0][1]) for s in counts)
        numeric = kind in ("float", "integer")
        if most <= max_points:
            rows = self.query(f"SELECT {f} FROM {source} {where} GROUP BY *")
            return [
                Series(
                    measurement,
                    field,
                    _series_tags(s),
                    "raw",
                    0.0,
                    [(ts / 1000, self._value(v, kind)) for ts, v in s["values"] if v is not None],
                )
                for s in rows
            ]
        width = bucket_ms(start, end, max_points)
        group = f"GROUP BY time({width}ms), * fill(none)"
        if not numeric:  # strings and bools: the last value of each bucket, as the store does
            rows = self.query(f"SELECT last({f}) FROM {source} {where} {group}")
            return [
                Series(
                    measurement,
                    field,
                    _series_tags(s),
                    "downsampled",
                    0.0,
                    [(ts / 1000, self._value(v, kind)) for ts, v in s["values"]],
                )
                for s in rows
            ]
        rows = self.query(f"SELECT min({f}), max({f}), mean({f}) FROM {source} {where} {group}")
        return [
            Series(
                measurement,
                field,
                _series_tags(s),
                "downsampled",
                width / 1000,
                [(ts / 1000, float(lo), float(hi), float(avg)) for ts, lo, hi, avg in s["values"]],
            )
            for s in rows
        ]

    def latest(self, target_id: str) -> dict[str, list[dict[str, Any]]]:
        q = f'SELECT last(*) FROM /.*/ WHERE "target" = {quote_string(target_id)} GROUP BY *'
        out: dict[str, list[dict[str, Any]]] = {}
        for s in self.query(q):
            columns, values = s["columns"], s["values"][0]
            fields = {
                name.removeprefix("last_"): value
                for name, value in zip(columns[1:], values[1:], strict=True)
                if value is not None
            }
            if not fields:
                continue
            tags = {k: v for k, v in _series_tags(s).items() if k not in STANDARD_TAGS}
            # last(*) stamps the row with the query's start, not each value's time; ask
            # for the newest point's own time so "updated 5 s ago" is true.
            out.setdefault(s["name"], []).append(
                {"tags": tags, "time": self._newest(s["name"], target_id, s), "fields": fields}
            )
        return out

    def _newest(self, measurement: str, target_id: str, series: Mapping[str, Any]) -> float | None:
        where = where_clause(target_id, 0, 2**62 / 1e9, _series_tags(series))
        rows = self.query(
            f"SELECT * FROM {self._measurement(measurement)} {where} ORDER BY time DESC LIMIT 1"
        )
        return rows[0]["values"][0][0] / 1000 if rows else None

    @staticmethod
    def _value(value: Any, kind: str) -> Any:
        if kind == "integer" and isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    def close(self) -> None:
        self._server.close()
