"""The services some tests need: PostgreSQL, Redis and a headless Chromium.

Where PostgreSQL and Redis are comes from the environment, with the defaults of the
project's CI machine:

- ``COMMET_TEST_POSTGRES_URL``, default ``postgresql://postgres@127.0.0.1:5432/test``
- ``COMMET_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/0``

Tests that need one carry the marker of the same name (``postgres``, ``redis``,
``browser``); ``tests/conftest.py`` skips them, with the reason, when the service does
not answer, and fails them instead when every service is required (``CI=true`` or
``COMMET_TEST_REQUIRE_SERVICES=1``, as ``.ci/run`` sets).
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = [
    "POSTGRES_ENV",
    "POSTGRES_URL",
    "REDIS_ENV",
    "REDIS_URL",
    "SERVICES",
    "Service",
    "postgres_url",
    "redacted",
    "redis_url",
    "services_required",
]

POSTGRES_ENV = "COMMET_TEST_POSTGRES_URL"
REDIS_ENV = "COMMET_TEST_REDIS_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

POSTGRES_URL = os.environ.get(POSTGRES_ENV) or DEFAULT_POSTGRES_URL
REDIS_URL = os.environ.get(REDIS_ENV) or DEFAULT_REDIS_URL

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

#: Every skip for a missing service starts with this, so CI can refuse them.
UNAVAILABLE = "service unavailable:"


def services_required() -> bool:
    """True when a missing service must fail the run instead of skipping (CI)."""
    flag = os.environ.get("COMMET_TEST_REQUIRE_SERVICES", "").strip().lower()
    ci = os.environ.get("CI", "").strip().lower()
    return flag not in ("", "0", "false", "no") or ci in ("1", "true", "yes")


def _rebuild(
    url: str,
    *,
    user: str | None = None,
    password: str | None = None,
    port: int | None = None,
    path: str | None = None,
) -> str:
    parts = urlsplit(url)
    user = parts.username if user is None else user
    password = parts.password if password is None else password
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    netloc = ""
    if user or password:
        netloc = quote(user or "", safe="")
        if password:
            netloc += ":" + quote(password, safe="")
        netloc += "@"
    netloc += f"{host}:{parts.port if port is None else port}" if (parts.port or port) else host
    return urlunsplit((parts.scheme, netloc, parts.path if path is None else path, parts.query, ""))


def redis_url(
    *, db: int | None = None, user: str | None = None, password: str | None = None,
    port: int | None = None,
) -> str:  # fmt: skip
    """:data:`REDIS_URL` with another database number, user, password or port."""
    return _rebuild(
        REDIS_URL, user=user, password=password, port=port,
        path=None if db is None else f"/{db}",
    )  # fmt: skip


def postgres_url(
    *, database: str | None = None, password: str | None = None, port: int | None = None
) -> str:
    """:data:`POSTGRES_URL` with another database, password or port."""
    return _rebuild(
        POSTGRES_URL, password=password, port=port,
        path=None if database is None else f"/{database}",
    )  # fmt: skip


def redacted(url: str) -> str:
    """``url`` with its password, if any, shown as ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))


def _clean(error: BaseException, url: str) -> str:
    text = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error) else ''}"
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


def _probe_postgres() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (scripts/bootstrap installs it)"
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except Exception as exc:
        return f"{_clean(exc, POSTGRES_URL)}"
    return None


def _probe_redis() -> str | None:
    try:
        import redis
    except ImportError:
        return "redis is not installed (scripts/bootstrap installs it)"
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except Exception as exc:
        return f"{_clean(exc, REDIS_URL)}"
    finally:
        client.close()
    return None


def _probe_browser() -> str | None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        return f"{' and '.join(missing)} not found"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (scripts/bootstrap installs it)"
    return None


@dataclass(frozen=True)
class Service:
    """A service tests carry the marker ``marker`` for."""

    marker: str
    what: str
    hint: str
    probe: Callable[[], str | None]

    @functools.cached_property
    def problem(self) -> str | None:
        """Why the service cannot be used (probed once per process), or None."""
        found = self.probe()
        if found is None:
            return None
        return f"{UNAVAILABLE} {self.what}: {found}; {self.hint}"


SERVICES = {
    service.marker: service
    for service in (
        Service(
            "postgres",
            f"PostgreSQL at {redacted(POSTGRES_URL)}",
            f"start it or set {POSTGRES_ENV}",
            _probe_postgres,
        ),
        Service(
            "redis",
            f"Redis at {redacted(REDIS_URL)}",
            f"start it or set {REDIS_ENV}",
            _probe_redis,
        ),
        Service(
            "browser",
            "headless Chromium",
            "run scripts/bootstrap --browser (Debian's chromium and chromium-driver)",
            _probe_browser,
        ),
    )
}
