"""Every TABLESTREAM_* setting, declared once, parsed once, refused at start-up when wrong.

Each setting is one row of ``SETTINGS``: its environment variable, a converter that names what
is allowed, a default and one line of help. ``Settings.from_env`` is the only place the
environment is read; the CLI's ``--help``, the README table and its test are built from the
same rows, so a setting cannot exist without being documented.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["SETTINGS", "ConfigError", "Setting", "Settings", "settings_markdown"]

KIB = 1024
MIB = 1024 * KIB


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names it and what is allowed."""


def integer(low: int, high: int, unit: str = "") -> Callable[[str], int]:
    """A converter for a whole number in [low, high]."""
    allowed = f"an integer{(' (' + unit + ')') if unit else ''} between {low} and {high}"

    def convert(text: str) -> int:
        try:
            value = int(text.strip().replace("_", ""))
        except ValueError:
            raise ValueError(f"is not an integer; expected {allowed}") from None
        if not low <= value <= high:
            raise ValueError(f"is out of range; expected {allowed}")
        return value

    convert.allowed = allowed  # type: ignore[attr-defined]
    return convert


def number(low: float, high: float, unit: str = "") -> Callable[[str], float]:
    """A converter for a decimal number in [low, high]."""
    allowed = f"a number{(' (' + unit + ')') if unit else ''} between {low:g} and {high:g}"

    def convert(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise ValueError(f"is not a number; expected {allowed}") from None
        if not low <= value <= high:
            raise ValueError(f"is out of range; expected {allowed}")
        return value

    convert.allowed = allowed  # type: ignore[attr-defined]
    return convert


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def boolean(text: str) -> bool:
    """A converter that reads the usual spellings of yes and no (and refuses anything else)."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("is not a boolean; expected one of 1/0, true/false, yes/no, on/off")


boolean.allowed = "1/0, true/false, yes/no, on/off"  # type: ignore[attr-defined]


def text(value: str) -> str:
    return value.strip()


text.allowed = "any text"  # type: ignore[attr-defined]

TABLE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def csv_tables(value: str) -> tuple[tuple[str, str], ...]:
    """``NAME=PATH[,NAME=PATH...]``: each CSV file served as a table under NAME."""
    pairs: list[tuple[str, str]] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, path = item.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise ValueError(f"has an entry {item!r} that is not NAME=PATH")
        if not TABLE_NAME.match(name):
            raise ValueError(f"has a table name {name!r} that is not letters, digits, _ . -")
        pairs.append((name, path))
    return tuple(pairs)


csv_tables.allowed = "NAME=PATH[,NAME=PATH...]"  # type: ignore[attr-defined]

_PG_NAME = r"[A-Za-z_][A-Za-z0-9_$]{0,62}"
_PG_ENTRY = re.compile(rf"^(?:{_PG_NAME}\.)?(?:{_PG_NAME}|\*)$")


def pg_tables(value: str) -> tuple[str, ...]:
    """``TABLE``, ``SCHEMA.TABLE`` or ``SCHEMA.*``, comma-separated."""
    entries = tuple(item.strip() for item in value.split(",") if item.strip())
    for entry in entries:
        if not _PG_ENTRY.match(entry):
            raise ValueError(
                f"has an entry {entry!r} that is not TABLE, SCHEMA.TABLE or SCHEMA.* "
                "(plain identifiers: letters, digits, _ and $)"
            )
    return entries


pg_tables.allowed = "TABLE, SCHEMA.TABLE or SCHEMA.*, comma-separated"  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Setting:
    attr: str
    env: str
    convert: Callable[[str], Any]
    default: str
    help: str

    @property
    def allowed(self) -> str:
        return getattr(self.convert, "allowed", "")

    def render(self, value: Any) -> str:
        """``value`` as its environment text, which ``convert`` reads back to the same value."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, tuple):
            return ",".join("=".join(v) if isinstance(v, tuple) else str(v) for v in value)
        return str(value)


def _s(attr: str, convert: Callable[[str], Any], default: str, help: str, env: str = "") -> Setting:
    return Setting(attr, env or "TABLESTREAM_" + attr.upper(), convert, default, help)


# The one list of settings. Add a row here and the CLI help and the README test pick it up.
SETTINGS: tuple[Setting, ...] = (
    # -- row sources
    _s(
        "db",
        text,
        "data/demo.sqlite3",
        "SQLite file whose tables are served (read-only); empty to serve none",
    ),
    _s("csv", csv_tables, "", "CSV files served as tables, NAME=PATH[,NAME=PATH...]"),
    _s(
        "csv_field_limit",
        integer(1 * KIB, 1024 * MIB, "bytes"),
        str(16 * MIB),
        "longest CSV field read (characters; bytes for ASCII); a longer one ends the stream "
        "with an error naming the row",
    ),
    _s(
        "synthetic_rows",
        integer(0, 10**12),
        "10000000",
        "rows of the built-in 'synthetic' table; 0 turns the table off",
    ),
    _s(
        "fetch_rows",
        integer(1, 100_000),
        "2000",
        "rows fetched from a database cursor per round trip (fetchmany size)",
    ),
    # -- the stream
    _s(
        "chunk_bytes",
        integer(1 * KIB, 4 * MIB, "bytes"),
        "32768",
        "target size of each HTTP chunk; template output is coalesced up to this many bytes",
    ),
    _s(
        "gzip",
        boolean,
        "true",
        "gzip the table stream chunk by chunk when the client accepts it (Accept-Encoding)",
    ),
    _s(
        "gzip_level",
        integer(1, 9),
        "1",
        "zlib level for gzip: 1 is fastest (the stream's CPU cost), 9 smallest",
    ),
    _s("max_rows", integer(1, 10**12), "10000000", "largest ?limit= a request may ask for"),
    _s("max_offset", integer(0, 10**15), "1000000000000", "largest ?offset= a request may ask for"),
    # -- waitress
    _s("host", text, "127.0.0.1", "address waitress listens on"),
    _s("port", integer(0, 65535), "8080", "port waitress listens on"),
    _s(
        "threads",
        integer(1, 256),
        "12",
        "waitress worker threads: the stream slots plus a reserve for probes and small requests",
    ),
    _s(
        "connection_limit",
        integer(1, 100_000),
        "1000",
        "open connections a process holds before it stops accepting (poll(), no 1024-fd cap)",
    ),
    _s("backlog", integer(1, 65535), "1024", "listen backlog of the server socket"),
    _s(
        "channel_timeout",
        integer(1, 86400, "seconds"),
        "120",
        "seconds an idle connection is kept before waitress closes it",
    ),
    _s(
        "outbuf_high_watermark",
        integer(64 * KIB, 1024 * MIB, "bytes"),
        str(2 * MIB),
        "unsent bytes per connection at which the stream waits for the client (bounds memory)",
    ),
    _s(
        "outbuf_overflow",
        integer(64 * KIB, 1024 * MIB, "bytes"),
        str(1 * MIB),
        "unsent bytes per connection kept in RAM before waitress spills to a temp file",
    ),
    _s(
        "max_request_header_size",
        integer(1 * KIB, 1 * MIB, "bytes"),
        "16384",
        "largest request header block waitress accepts (431/400 above it)",
    ),
    _s(
        "max_request_body_size",
        integer(0, 1024 * MIB, "bytes"),
        "65536",
        "largest request body waitress accepts; the service reads none",
    ),
    _s("ident", text, "tablestream", "Server header value"),
    _s(
        "malloc_arenas",
        integer(0, 64),
        "1",
        "glibc malloc arenas for the server process (bounds per-thread memory); 0 = glibc default",
    ),
    _s("log_level", text, "INFO", "logging level: DEBUG, INFO, WARNING or ERROR"),
    # -- metrics
    _s(
        "metrics_port",
        integer(0, 65535),
        "0",
        "serve /metrics on this port instead of the public one; 0 = on the public port",
    ),
    _s("metrics_host", text, "127.0.0.1", "address of the separate metrics port"),
    _s(
        "prometheus_multiproc_dir",
        text,
        "",
        "directory shared by several server processes for aggregated metrics; empty = one "
        "process (read by prometheus_client itself too)",
        env="PROMETHEUS_MULTIPROC_DIR",
    ),
    _s(
        "processes",
        integer(1, 64),
        "1",
        "waitress processes `tablestream serve` runs, accepting from one shared listening socket",
    ),
    # -- reliability
    _s(
        "write_timeout",
        number(1, 86400, "seconds"),
        "60",
        "seconds a stream may make no progress (client not reading) before it is cut",
    ),
    _s(
        "stream_slots",
        integer(0, 256),
        "0",
        "streams that may run at once; more get 503 + Retry-After at once; 0 = threads minus "
        "a reserve of up to 4 threads kept for probes and small requests",
    ),
    _s(
        "small_rows",
        integer(0, 1_000_000),
        "1000",
        "a table request with ?limit= up to this many rows is small: it needs no stream slot",
    ),
    _s(
        "streams_per_client",
        integer(0, 256),
        "0",
        "streams one client address may run at once (the forwarded address behind a trusted "
        "proxy); 0 = no cap",
    ),
    _s(
        "retry_after",
        integer(1, 3600, "seconds"),
        "2",
        "Retry-After of the 503 a stream request gets when no slot is free",
    ),
    _s(
        "header_timeout",
        number(0.5, 3600, "seconds"),
        "10",
        "seconds a connection has to send a complete request line and headers, from its first "
        "byte (or from connecting); the connection is closed after it",
    ),
    _s(
        "keepalive_timeout",
        number(0.5, 86400, "seconds"),
        "15",
        "seconds a kept-alive connection may sit idle between requests before it is closed",
    ),
    _s(
        "min_send_rate",
        integer(0, 1024 * MIB, "bytes per second"),
        "4096",
        "a stream whose client accepted less than this on average over the last "
        "TABLESTREAM_SEND_RATE_WINDOW is cut; 0 = only TABLESTREAM_WRITE_TIMEOUT applies",
    ),
    _s(
        "send_rate_window",
        number(1, 86400, "seconds"),
        "60",
        "the window over which TABLESTREAM_MIN_SEND_RATE is averaged",
    ),
    _s(
        "shutdown_grace",
        number(0, 3600, "seconds"),
        "30",
        "on SIGTERM, seconds in-flight streams get to finish before they are cut",
    ),
    # -- PostgreSQL (extra "pg")
    _s(
        "pg_dsn", text, "", "PostgreSQL connection string (libpq DSN or URI); empty = no PostgreSQL"
    ),
    _s(
        "pg_tables",
        pg_tables,
        "",
        "PostgreSQL tables or views to serve: TABLE, SCHEMA.TABLE, SCHEMA.*",
    ),
    _s("pg_pool_min", integer(0, 100), "1", "PostgreSQL connections kept open when idle"),
    _s(
        "pg_pool_max",
        integer(1, 1000),
        "8",
        "most PostgreSQL connections at once = concurrent PostgreSQL streams per process",
    ),
    _s(
        "pg_pool_timeout",
        number(0.1, 300, "seconds"),
        "2",
        "seconds a stream waits for a free PostgreSQL connection before a 503 with Retry-After",
    ),
    _s(
        "reuse_port",
        boolean,
        "false",
        "bind the port with SO_REUSEPORT so separately started processes can share it",
    ),
    _s(
        "listen_fd",
        integer(0, 65535),
        "0",
        "serve on this inherited listening socket instead of binding host:port (set by "
        "--processes for its children); 0 = bind",
    ),
)


def settings_markdown() -> str:
    """The README's configuration table, one row per setting (``tablestream settings``)."""
    rows = ["| Variable | Default | Allowed | Meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        default = f"`{s.default}`" if s.default else "(empty)"
        rows.append(f"| `{s.env}` | {default} | {s.allowed} | {s.help} |")
    return "\n".join(rows) + "\n"


_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR"}


@dataclass(frozen=True)
class Settings:
    """The service's configuration, validated; build it with ``from_env`` or ``from_mapping``.

    Defaults live only in ``SETTINGS``; a setting missing from the input takes its default.
    """

    db: str
    csv: tuple[tuple[str, str], ...]
    csv_field_limit: int
    synthetic_rows: int
    fetch_rows: int
    chunk_bytes: int
    gzip: bool
    gzip_level: int
    max_rows: int
    max_offset: int
    host: str
    port: int
    threads: int
    connection_limit: int
    backlog: int
    channel_timeout: int
    outbuf_high_watermark: int
    outbuf_overflow: int
    max_request_header_size: int
    max_request_body_size: int
    ident: str
    malloc_arenas: int
    log_level: str
    metrics_port: int
    metrics_host: str
    prometheus_multiproc_dir: str
    processes: int
    write_timeout: float
    stream_slots: int
    small_rows: int
    streams_per_client: int
    retry_after: int
    header_timeout: float
    keepalive_timeout: float
    min_send_rate: int
    send_rate_window: float
    shutdown_grace: float
    pg_dsn: str
    pg_tables: tuple[str, ...]
    pg_pool_min: int
    pg_pool_max: int
    pg_pool_timeout: float
    reuse_port: bool
    listen_fd: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every TABLESTREAM_* variable; raise ConfigError naming the first bad one."""
        environ = os.environ if environ is None else environ
        values = {s.attr: environ[s.env] for s in SETTINGS if s.env in environ}
        return cls.from_mapping(values, source="env")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "config") -> Settings:
        """Build settings from attr-named values (strings are converted like env values)."""
        by_attr = {s.attr: s for s in SETTINGS}
        unknown = sorted(set(values) - set(by_attr))
        if unknown:
            raise ConfigError(
                f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(by_attr))}"
            )
        parsed: dict[str, Any] = {}
        for attr, raw in {**{s.attr: s.default for s in SETTINGS}, **values}.items():
            setting = by_attr[attr]
            # Every value goes through its converter, whatever its type: {"threads": -3} is
            # refused like TABLESTREAM_THREADS=-3.
            text = raw if isinstance(raw, str) else setting.render(raw)
            try:
                parsed[attr] = setting.convert(text)
            except (TypeError, ValueError) as exc:
                name = setting.env if source == "env" else attr
                raise ConfigError(f"{name}={raw!r} {exc}") from None
        settings = cls(**parsed)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Cross-field checks that a single converter cannot make."""
        if self.log_level.upper() not in _LOG_LEVELS:
            raise ConfigError(
                f"TABLESTREAM_LOG_LEVEL={self.log_level!r} is not a level; "
                f"expected one of {', '.join(sorted(_LOG_LEVELS))}"
            )
        if self.outbuf_overflow > self.outbuf_high_watermark:
            raise ConfigError(
                f"TABLESTREAM_OUTBUF_OVERFLOW={self.outbuf_overflow} is above "
                f"TABLESTREAM_OUTBUF_HIGH_WATERMARK={self.outbuf_high_watermark}; "
                "expected overflow <= high watermark"
            )
        if self.metrics_port and self.metrics_port == self.port:
            raise ConfigError(
                f"TABLESTREAM_METRICS_PORT={self.metrics_port} is the public port; "
                "expected another port, or 0 to serve /metrics on the public port"
            )
        if self.prometheus_multiproc_dir and not os.path.isdir(self.prometheus_multiproc_dir):
            raise ConfigError(
                f"PROMETHEUS_MULTIPROC_DIR={self.prometheus_multiproc_dir!r} is not a directory; "
                "expected an existing directory shared by the server processes"
            )
        if self.pg_dsn and not self.pg_tables:
            raise ConfigError(
                "TABLESTREAM_PG_DSN is set but TABLESTREAM_PG_TABLES is empty; expected the "
                "tables to serve, e.g. TABLESTREAM_PG_TABLES=public.orders or public.*"
            )
        if self.pg_pool_min > self.pg_pool_max:
            raise ConfigError(
                f"TABLESTREAM_PG_POOL_MIN={self.pg_pool_min} is above TABLESTREAM_PG_POOL_MAX="
                f"{self.pg_pool_max}; expected min <= max"
            )
        if self.stream_slots > self.threads:
            raise ConfigError(
                f"TABLESTREAM_STREAM_SLOTS={self.stream_slots} is above TABLESTREAM_THREADS="
                f"{self.threads}; expected fewer slots than threads (a reserve answers probes), "
                "or 0 for the default reserve"
            )
        names = [name for name, _ in self.csv]
        if len(set(names)) != len(names):
            raise ConfigError(f"TABLESTREAM_CSV names a table twice: {', '.join(names)}")

    def to_env(self) -> dict[str, str]:
        """Every setting as environment text: what a child process needs to rebuild these
        exact settings with ``from_env`` (command-line flags included)."""
        return {s.env: s.render(getattr(self, s.attr)) for s in SETTINGS}

    @property
    def effective_stream_slots(self) -> int:
        """Stream slots: as set, or the threads minus a reserve of up to 4 (at least 1 slot)."""
        if self.stream_slots:
            return self.stream_slots
        return max(1, self.threads - min(4, max(1, self.threads // 3)))

    def waitress_options(self) -> dict[str, Any]:
        """The keyword arguments handed to ``waitress.serve``."""
        return {
            "host": self.host,
            "port": self.port,
            "threads": self.threads,
            "connection_limit": self.connection_limit,
            "backlog": self.backlog,
            "channel_timeout": self.channel_timeout,
            "outbuf_high_watermark": self.outbuf_high_watermark,
            "outbuf_overflow": self.outbuf_overflow,
            "max_request_header_size": self.max_request_header_size,
            "max_request_body_size": self.max_request_body_size,
            "ident": self.ident,
            "expose_tracebacks": False,
            # poll() instead of select(): no 1,024-descriptor ceiling on connection_limit.
            "asyncore_use_poll": True,
            "clear_untrusted_proxy_headers": True,
        }
