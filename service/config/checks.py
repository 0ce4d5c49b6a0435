"""Cross-setting checks that no single converter can make, refused at start-up.

Each message names the settings involved, their values and what would be accepted.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .converters import ConfigError

if TYPE_CHECKING:
    from .settings import Settings

__all__ = ["validate"]

_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR"}
# Settings that only mean something with a trusted proxy: their defaults, as parsed.
_PROXY_ONLY = ("trusted_proxy_count", "trusted_proxy_headers")


def validate(settings: Settings) -> None:
    """Raise ConfigError for the first combination of settings that cannot work."""
    from .settings import SETTINGS

    if settings.log_level.upper() not in _LOG_LEVELS:
        raise ConfigError(
            f"TABLESTREAM_LOG_LEVEL={settings.log_level!r} is not a level; "
            f"expected one of {', '.join(sorted(_LOG_LEVELS))}"
        )
    if settings.outbuf_overflow > settings.outbuf_high_watermark:
        raise ConfigError(
            f"TABLESTREAM_OUTBUF_OVERFLOW={settings.outbuf_overflow} is above "
            f"TABLESTREAM_OUTBUF_HIGH_WATERMARK={settings.outbuf_high_watermark}; "
            "expected overflow <= high watermark"
        )
    if settings.metrics_port and settings.metrics_port == settings.port:
        raise ConfigError(
            f"TABLESTREAM_METRICS_PORT={settings.metrics_port} is the public port; "
            "expected another port, or 0 to serve /metrics on the public port"
        )
    if settings.prometheus_multiproc_dir and not os.path.isdir(settings.prometheus_multiproc_dir):
        raise ConfigError(
            f"PROMETHEUS_MULTIPROC_DIR={settings.prometheus_multiproc_dir!r} is not a directory; "
            "expected an existing directory shared by the server processes"
        )
    if settings.pg_dsn and not settings.pg_tables:
        raise ConfigError(
            "TABLESTREAM_PG_DSN is set but TABLESTREAM_PG_TABLES is empty; expected the "
            "tables to serve, e.g. TABLESTREAM_PG_TABLES=public.orders or public.*"
        )
    if settings.pg_pool_min > settings.pg_pool_max:
        raise ConfigError(
            f"TABLESTREAM_PG_POOL_MIN={settings.pg_pool_min} is above TABLESTREAM_PG_POOL_MAX="
            f"{settings.pg_pool_max}; expected min <= max"
        )
    if settings.stream_slots > settings.threads:
        raise ConfigError(
            f"TABLESTREAM_STREAM_SLOTS={settings.stream_slots} is above TABLESTREAM_THREADS="
            f"{settings.threads}; expected fewer slots than threads (a reserve answers probes), "
            "or 0 for the default reserve"
        )
    for setting in SETTINGS:
        if setting.attr in ("trusted_proxy_count", "trusted_proxy_headers"):
            default = setting.convert(setting.default)
            if getattr(settings, setting.attr) != default and not settings.trusted_proxy:
                raise ConfigError(_without_proxy(setting.env))
    if settings.trusted_proxy and not settings.trusted_proxy_headers:
        raise ConfigError(
            "TABLESTREAM_TRUSTED_PROXY is set but TABLESTREAM_TRUSTED_PROXY_HEADERS is empty; "
            "expected the forwarded headers to believe, e.g. x-forwarded-for x-forwarded-proto"
        )
    if settings.auth_policy_file and not settings.trusted_proxy:
        raise ConfigError(
            "TABLESTREAM_AUTH_POLICY_FILE is set but TABLESTREAM_TRUSTED_PROXY is empty; the "
            "proxy's user and group headers are believed only from the trusted proxy: expected "
            "its address in TABLESTREAM_TRUSTED_PROXY (docs/production.md)"
        )
    if settings.auth_policy_file and not settings.auth_proxy_secret_file:
        raise ConfigError(
            "TABLESTREAM_AUTH_POLICY_FILE is set but TABLESTREAM_AUTH_PROXY_SECRET_FILE is "
            "empty; the proxy's user and group headers are believed only with the secret the "
            "sign-in proxy sends: expected the file holding it (docs/production.md)"
        )
    if settings.auth_proxy_secret_file and not settings.auth_policy_file:
        raise ConfigError(
            "TABLESTREAM_AUTH_PROXY_SECRET_FILE is set but TABLESTREAM_AUTH_POLICY_FILE is "
            "empty; the secret only proves the proxy's user headers, which only the policy "
            "file gives tables to: expected both, or neither"
        )
    if settings.auth_user_header.lower() == settings.auth_groups_header.lower():
        raise ConfigError(
            f"TABLESTREAM_AUTH_USER_HEADER and TABLESTREAM_AUTH_GROUPS_HEADER are both "
            f"{settings.auth_user_header!r}; expected two different headers"
        )
    names = [name for name, _ in settings.csv]
    if len(set(names)) != len(names):
        raise ConfigError(f"TABLESTREAM_CSV names a table twice: {', '.join(names)}")


def _without_proxy(env: str) -> str:
    return (
        f"{env} is set but TABLESTREAM_TRUSTED_PROXY is empty; expected the proxy's address in "
        "TABLESTREAM_TRUSTED_PROXY (forwarded headers are believed only from it), or leave "
        f"{env} at its default"
    )
