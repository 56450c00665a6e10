"""The incident list's query string: ``?state=&severity=&target=&component=&from=&to=&page=``.

Strict like every query string here (``web.params``): an unknown parameter, a
state or severity that does not exist, a target id that cannot be one, a
component the config does not have, a time that is no time or a page that is
not ASCII digits is a ``ParamError`` naming the parameter (the page shows it
as a 400). ``from`` and ``to`` are dates (``2026-12-01``) or local times
(``2026-12-01T14:30``, what ``<input type="datetime-local">`` sends) in the
site timezone, or times with their zone (``2026-12-01T06:30Z``, for scripts);
a date alone for ``to`` means the end of that day. The API's incident list
(``GET /api/v1/incidents``) takes the same parameters, parsed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from monitor import components
from monitor.config.schema import Config
from monitor.incident_actions import SEVERITIES
from monitor.store.models import INCIDENT_STATES
from monitor.store.queries import IncidentFilter, Page
from web import params

PARAMS = ("state", "severity", "target", "component", "from", "to", "page", "per_page")
DEFAULT_PER_PAGE = 50


@dataclass(frozen=True, slots=True)
class IncidentQuery:
    """What the list was asked for, as given (for the form) and as a filter (for the query)."""

    states: tuple[str, ...]
    severity: tuple[str, ...]
    target: str
    component: str
    since_text: str
    until_text: str
    flt: IncidentFilter
    page: Page

    def is_empty(self) -> bool:
        return not (
            self.states
            or self.severity
            or self.target
            or self.component
            or self.since_text
            or self.until_text
        )


def _given(args: params.Args, name: str) -> str:
    """A text parameter that, when given, says something (a page drops its form's empty
    "any" values before; a program that sends ``?target=`` means nothing by it)."""
    if name in args and not params.text(args, name, 64):
        raise params.ParamError(f"{name}: empty value")
    return params.text(args, name, 64)


def incident_query(
    args: params.Args,
    cfg: Config,
    timezone: str,
    *,
    extra_allowed: tuple[str, ...] = (),
    default_per_page: int = DEFAULT_PER_PAGE,
) -> IncidentQuery:
    """The list's parameters → a query (``extra_allowed``: ``lang`` on a page)."""
    params.reject_unknown(args, (*PARAMS, *extra_allowed))
    states = params.choices(args, "state", INCIDENT_STATES)
    severity = params.choices(args, "severity", SEVERITIES)
    groups: list[tuple[str, ...]] = []
    target = _given(args, "target")
    if target:
        if not params.is_target_id(target):
            raise params.ParamError(f"target: {target!r} cannot be a target id")
        groups.append((target,))
    component = _given(args, "component")
    if component:
        found = next((c for c in cfg.components if c.id == component), None)
        if found is None:
            known = ", ".join(c.id for c in cfg.components) or "none configured"
            raise params.ParamError(f"component: unknown {component!r}; allowed: {known}")
        groups.append(tuple(components.members(found, cfg.targets)))
    zone = ZoneInfo(timezone)
    since = params.instant(args, "from", zone)
    until = params.instant(args, "to", zone, end_of_day=True)
    if since is not None and until is not None and until <= since:
        raise params.ParamError("to: must be after from")
    return IncidentQuery(
        states=states,
        severity=severity,
        target=target,
        component=component,
        since_text=params.single(args, "from") or "",
        until_text=params.single(args, "to") or "",
        flt=IncidentFilter(severity=severity, member_of=tuple(groups), since=since, until=until),
        page=params.page(args, default_per_page),
    )
