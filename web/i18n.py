"""Language and time choices for pages: which locale, which timezone, how times read.

Locale order (first that applies): ``?lang=`` → the ``lang`` cookie → the
browser's Accept-Language → ``site.language`` in the config.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, support
from babel import dates as babel_dates
from flask import Flask
from flask_babel import Babel, Domain, get_locale, get_timezone
from flask_babel import lazy_gettext as _l

from core.config import LANGUAGES
from core.observation import Status
from monitor.health import Health
from web.vocabulary import say

LANG_COOKIE = "lang"

# Babel locale id -> the tag used in config and URLs (``site.language``, ``?lang=``):
# one per language the config knows (component names are required in each).
LOCALES: dict[str, str] = {tag.replace("-", "_"): tag for tag in LANGUAGES}
_TAG_TO_LOCALE = {tag.lower(): loc for loc, tag in LOCALES.items()}

LANGUAGE_NAMES: dict[str, str] = {"zh-CN": "中文", "en": "English"}
"""Each language in its own words, for the language switch."""

HEALTH_LABELS = {
    Health.UP: _l("Up"),
    Health.DEGRADED: _l("Degraded"),
    Health.DOWN: _l("Down"),
    Health.UNKNOWN: _l("Unknown"),
    Health.MAINTENANCE: _l("Maintenance"),
}

STATUS_LABELS = {
    Status.OK: _l("OK"),
    Status.WARN: _l("Warning"),
    Status.FAIL: _l("Failed"),
    Status.ERROR: _l("Probe error"),
}
"""An observation's status, as the target page shows it."""


def locale_for_tag(tag: str | None) -> str | None:
    """``zh-CN``/``zh_cn``/``zh``/``zh-Hans`` → ``zh_CN``; ``en-US`` → ``en``; else None."""
    if not tag:
        return None
    tag = tag.strip().replace("_", "-").lower()
    if tag in _TAG_TO_LOCALE:
        return _TAG_TO_LOCALE[tag]
    primary = tag.split("-", 1)[0]
    if primary == "zh":
        # Only Simplified Chinese is shipped; a Traditional reader still reads it better than English.
        return "zh_CN"
    if primary == "en":
        return "en"
    return None


def choose_locale(
    query_lang: str | None,
    cookie_lang: str | None,
    accept_languages: Iterable[str],
    site_language: str,
) -> str:
    """The Babel locale id for a request (pure; see the module docstring for the order)."""
    for candidate in (query_lang, cookie_lang):
        if (loc := locale_for_tag(candidate)) is not None:
            return loc
    for tag in accept_languages:
        if (loc := locale_for_tag(tag)) is not None:
            return loc
    return locale_for_tag(site_language) or "zh_CN"


def valid_timezone(name: str) -> str:
    """The IANA name if this machine knows it, else ``UTC`` (a bad name must not break pages)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return "UTC"
    return name


def lang_tag() -> str:
    """The current page's language as a tag (``zh-CN`` or ``en``)."""
    return LOCALES[catalog_name(get_locale())]


def absolute_time(ts: float | None) -> str:
    """Epoch seconds → ``2026-11-23 23:05:10`` in the site timezone ('' for None)."""
    if ts is None:
        return ""
    moment = datetime.fromtimestamp(ts, UTC).astimezone(get_timezone())
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def relative_time(ts: float | None, now: float | None = None) -> str:
    """Epoch seconds → ``5 minutes ago`` / ``5分钟前`` in the page language."""
    if ts is None:
        return ""
    delta = timedelta(seconds=ts - (time.time() if now is None else now))
    return babel_dates.format_timedelta(
        delta, granularity="second", threshold=0.9, add_direction=True, locale=get_locale()
    )


def iso(ts: float | None) -> str | None:
    """Epoch seconds → ISO 8601 in UTC, for the API."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def catalog_name(locale: Locale | None) -> str:
    """The folder under ``web/translations`` holding a locale's catalog.

    Babel spells Simplified Chinese ``zh_Hans_CN``, and gettext would then only
    look in ``zh_Hans_CN`` or ``zh``; our catalogs use the familiar ``zh_CN``.
    """
    if locale is None:
        return "en"
    return "zh_CN" if locale.language == "zh" else locale.language


class CatalogDomain(Domain):
    """Flask-Babel's message domain, finding catalogs by ``catalog_name``; each loaded once."""

    def __init__(self, directory: str) -> None:
        super().__init__(translation_directories=[directory])
        self._directory = directory
        self._loaded: dict[str, support.NullTranslations] = {}

    def get_translations(self) -> support.NullTranslations:
        name = catalog_name(get_locale())
        catalog = self._loaded.get(name)
        if catalog is None:
            catalog = support.Translations.load(self._directory, [name], "messages")
            self._loaded[name] = catalog
        return catalog


class DialwatchBabel(Babel):
    """Flask-Babel with our catalog lookup (see ``CatalogDomain``) and the template
    filters that put our own words in the page language: ``say`` (probe details and
    health reasons, see ``web.vocabulary``) and ``status_label``."""

    def __init__(self, app: Flask, directory: str, **kwargs: Any) -> None:
        self._catalog_directory = directory
        super().__init__(app, **kwargs)
        app.jinja_env.filters.update(
            say=say,
            status_label=lambda status: STATUS_LABELS.get(status, status),
        )

    @cached_property
    def domain_instance(self) -> Domain:
        return CatalogDomain(self._catalog_directory)
