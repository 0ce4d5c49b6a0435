"""Every TABLESTREAM_* setting, declared once, parsed once, refused at start-up when wrong.

Each setting is one field of ``Settings``: its type, and in ``setting(...)`` its converter
(which names what is allowed), its default as environment text and one line of help; the
environment variable is ``TABLESTREAM_`` + the field's name unless given. ``SETTINGS`` is read
off those fields, so the CLI's ``--help``, the settings table in docs/settings.md and its test
cannot miss one. ``Settings.from_env`` is the only place the environment is read, and every
value, whatever its origin, goes through its converter and then the cross-field checks of
``checks.py``. ``to_env`` writes the settings back as environment text, which is how the
children of ``--processes`` get their parent's settings whole.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .checks import validate
from .converters import (
    KIB,
    MIB,
    ConfigError,
    boolean,
    choice,
    csv_tables,
    header_name,
    integer,
    number,
    pg_tables,
    proxy_address,
    proxy_headers,
    redis_key_prefix,
    redis_url,
    text,
)
from .declare import Setting, declared, markdown_table, setting

__all__ = [
    "CSV_NULLS",
    "NDJSON_DECIMALS",
    "SETTINGS",
    "Setting",
    "Settings",
    "settings_markdown",
]

CSV_NULLS = ("empty", "copy", "\\N", "NULL")
"""How CSV writes NULL (``stream/csvnulls.py``); also what ``?null=`` accepts."""
NDJSON_DECIMALS = ("string", "number")
"""How NDJSON writes decimals (``stream/ndjson.py``); also what ``?decimals=`` accepts."""


@dataclass(frozen=True)
class Settings:
    """The service's configuration, validated; build it with ``from_env`` or ``from_mapping``.

    A setting missing from the input takes its default.
    """

    # -- row sources
    db: str = setting(
        text,
        "data/demo.sqlite3",
        "SQLite file whose tables are served (read-only); empty to serve none",
    )
    csv: tuple[tuple[str, str], ...] = setting(
        csv_tables,
        "",
        "CSV files served as tables, NAME=PATH[,NAME=PATH...]",
    )
    csv_field_limit: int = setting(
        integer(1 * KIB, 1024 * MIB, "bytes"),
        str(16 * MIB),
        "longest CSV field read (characters; bytes for ASCII); a longer one ends the stream "
        "with an error naming the row",
    )
    synthetic_rows: int = setting(
        integer(0, 10**12),
        "10000000",
        "rows of the built-in 'synthetic' table; 0 turns the table off",
    )
    sqlite_cache_kib: int = setting(
        integer(0, 1024 * 1024, "KiB"),
        "256",
        "SQLite page cache of each stream's connection (PRAGMA cache_size); 0 = SQLite's default "
        "(2000 KiB). A stream reads each page once, so a bigger cache buys no speed (measured) but "
        "costs RAM per stream and leaves the heap fragmented after many concurrent streams",
    )
    fetch_rows: int = setting(
        integer(0, 100_000),
        "0",
        "rows fetched from a database cursor per round trip (fetchmany size); 0 = per source: "
        "128 for SQLite (in process: a smaller fetch leaves less pinned after stalled "
        "readers), 256 for PostgreSQL; raise it for a database far away",
    )
    # -- the stream
    chunk_bytes: int = setting(
        integer(1 * KIB, 4 * MIB, "bytes"),
        "32768",
        "target size of each HTTP chunk; template output is coalesced up to this many bytes",
    )
    gzip: bool = setting(
        boolean,
        "true",
        "gzip the table stream chunk by chunk when the client accepts it (Accept-Encoding)",
    )
    gzip_level: int = setting(
        integer(1, 9),
        "1",
        "gzip level as zlib's: 1 is fastest (the stream's CPU cost), 9 smallest; 1-3 run on ISA-L",
    )
    csv_null: str = setting(
        choice(*CSV_NULLS),
        "empty",
        "how CSV writes NULL (?null= per request): empty = an empty field like an empty string "
        "(the bytes before it was a choice); copy = PostgreSQL COPY CSV's (NULL an empty "
        'unquoted field, an empty string ""); \\N or NULL = that word unquoted',
    )
    ndjson_decimals: str = setting(
        choice(*NDJSON_DECIMALS),
        "number",
        "how NDJSON writes decimals such as PostgreSQL numeric (?decimals= per request): number "
        "= 530.99, every digit in the JSON text, a number as from any source; string = "
        '"530.99", for readers whose floats would round',
    )
    sort_rows: int = setting(
        integer(0, 1_000_000),
        "10000",
        "largest offset + limit a sort may ask of a source that is not a database (CSV, "
        "synthetic), which sorts in memory; databases sort themselves, without this bound",
    )
    query_time_limit_ms: int = setting(
        integer(0, 3_600_000, "ms"),
        "1000",
        "longest a database query may take from opening to its first row (SQLite interrupted, "
        "PostgreSQL statement_timeout); past it a 503 says how to ask a cheaper query; once rows "
        "flow there is no limit; 0 = none",
    )
    facet_time_limit_ms: int = setting(
        integer(1, 60_000, "ms"),
        "200",
        "longest one facet's count (GROUP BY, /tables/<name>/facets.json) may take; past it the "
        "facet says timed_out",
    )
    log_filter_values: bool = setting(
        boolean,
        "true",
        "write filter values (?status=paid) in the access log; false logs the filters' names "
        "with their values replaced by REDACTED (for tables whose values are sensitive)",
    )
    page_rows: int = setting(
        integer(0, 10_000_000),
        "50000",
        "rows a table page keeps in the reader's browser: past them its script releases rows far "
        "from view and fetches them back by range (?fragment=rows); 0 keeps every row",
    )
    max_rows: int = setting(integer(1, 10**12), "10000000", "largest ?limit= a request may ask for")
    max_offset: int = setting(
        integer(0, 10**15),
        "1000000000000",
        "largest ?offset= a request may ask for",
    )
    # -- waitress
    host: str = setting(text, "127.0.0.1", "address waitress listens on")
    port: int = setting(integer(0, 65535), "8080", "port waitress listens on")
    threads: int = setting(
        integer(1, 4096),
        "264",
        "waitress worker threads: the stream slots plus a reserve for probes and small requests "
        "(an idle thread costs ~15 KiB)",
    )
    connection_limit: int = setting(
        integer(1, 1_000_000),
        "10000",
        "open connections a process holds (epoll; a few KiB each); at the limit the oldest one "
        "waiting for a request is closed for the new one; the open-file limit is raised to fit, "
        "or the limit lowered to what it allows (the start-up line says what is held)",
    )
    connections_per_client: int = setting(
        integer(0, 100_000),
        "100",
        "open connections one client address may hold; its next is closed at accept (reset, "
        "counted in tablestream_connections_rejected_total); the trusted proxy's address is "
        "exempt; 0 = no cap",
    )
    backlog: int = setting(integer(1, 65535), "1024", "listen backlog of the server socket")
    channel_timeout: int = setting(
        integer(1, 86400, "seconds"),
        "120",
        "seconds an idle connection is kept before waitress closes it",
    )
    outbuf_high_watermark: int = setting(
        integer(64 * KIB, 1024 * MIB, "bytes"),
        str(512 * KIB),
        "unsent bytes per connection at which the stream waits for the client (bounds memory)",
    )
    outbuf_overflow: int = setting(
        integer(64 * KIB, 1024 * MIB, "bytes"),
        str(256 * KIB),
        "waitress's own buffers only (file responses; none here): a connection's unsent output "
        "is queued as its chunks, in RAM, up to TABLESTREAM_OUTBUF_HIGH_WATERMARK, never on disk",
    )
    max_request_header_size: int = setting(
        integer(1 * KIB, 1 * MIB, "bytes"),
        "16384",
        "largest request header block waitress accepts (431/400 above it)",
    )
    max_request_body_size: int = setting(
        integer(0, 1024 * MIB, "bytes"),
        "65536",
        "largest request body waitress accepts; the service reads none",
    )
    ident: str = setting(text, "tablestream", "Server header value")
    # -- behind a reverse proxy (docs/proxies.md)
    trusted_proxy: str = setting(
        proxy_address,
        "",
        "address of the reverse proxy whose forwarded headers are believed (the access log "
        "and per-client limits then see the client); * trusts any peer (only if no client can "
        "reach the port directly); empty = none",
    )
    trusted_proxy_count: int = setting(
        integer(1, 32),
        "1",
        "proxy tiers in front of the service that append to X-Forwarded-For: the client is "
        "that many entries from the end; needs TABLESTREAM_TRUSTED_PROXY",
    )
    trusted_proxy_headers: tuple[str, ...] = setting(
        proxy_headers,
        "x-forwarded-for x-forwarded-proto",
        "forwarded headers believed from the trusted proxy; needs TABLESTREAM_TRUSTED_PROXY",
    )
    # -- who may read what (docs/production.md)
    tokens_file: str = setting(
        text,
        "",
        "TOML file of API tokens (hashes, names, tables, scopes) that clients send as "
        "'Authorization: Bearer'; reloaded when it changes or on SIGHUP; empty = no tokens",
    )
    auth_policy_file: str = setting(
        text,
        "",
        "TOML file mapping the authenticating proxy's groups (and users) to tables; needs "
        "TABLESTREAM_TRUSTED_PROXY and TABLESTREAM_AUTH_PROXY_SECRET_FILE; reloaded when it "
        "changes or on SIGHUP; empty = no proxy sign-in",
    )
    auth_proxy_secret_file: str = setting(
        text,
        "",
        "file holding the secret (32+ printable characters) the authenticating proxy sends in "
        "X-Tablestream-Proxy-Secret; its user and group headers are believed only with it; "
        "required with TABLESTREAM_AUTH_POLICY_FILE",
    )
    auth_user_header: str = setting(
        header_name,
        "X-Forwarded-User",
        "header in which the trusted authenticating proxy names the user",
    )
    auth_groups_header: str = setting(
        header_name,
        "X-Forwarded-Groups",
        "header in which the trusted authenticating proxy lists the user's groups "
        "(comma-separated)",
    )
    auth_failures_per_minute: int = setting(
        integer(0, 100_000),
        "30",
        "wrong credentials (malformed, unknown, expired; never a missing one) a client address "
        "may present per minute before further wrong ones get 429 instead of 401 (the budget "
        "refills continuously, is shared by the --processes children, and never refuses a "
        "valid credential); 0 = no limit",
    )
    secret_file: str = setting(
        text,
        "",
        "file of the deployment's secrets that sign 'next rows' links (_after), one per line, "
        "each at least 32 bytes (e.g. `openssl rand -hex 32`); the first signs, every one "
        "verifies (rotation); every instance of a deployment reads the same file; empty = a "
        "random secret made at start (one per server with --processes): links end at restart",
    )
    malloc_arenas: int = setting(
        integer(0, 64),
        "1",
        "glibc malloc arenas for the server process (bounds per-thread memory); 0 = glibc default",
    )
    log_level: str = setting(text, "INFO", "logging level: DEBUG, INFO, WARNING or ERROR")
    # -- metrics
    metrics_port: int = setting(
        integer(0, 65535),
        "0",
        "serve /metrics on this port instead of the public one; 0 = on the public port",
    )
    metrics_host: str = setting(text, "127.0.0.1", "address of the separate metrics port")
    prometheus_multiproc_dir: str = setting(
        text,
        "",
        "directory shared by several server processes for aggregated metrics; empty = one "
        "process (read by prometheus_client itself too)",
        env="PROMETHEUS_MULTIPROC_DIR",
    )
    processes: int = setting(
        integer(1, 64),
        "1",
        "waitress processes `tablestream serve` runs, accepting from one shared listening socket",
    )
    # -- reliability
    write_timeout: float = setting(
        number(1, 86400, "seconds"),
        "60",
        "seconds a stream may make no progress (client not reading) before it is cut",
    )
    stream_slots: int = setting(
        integer(0, 4096),
        "0",
        "streams that may run at once; more get 503 + Retry-After at once; 0 = threads minus "
        "a reserve of up to 4 threads kept for probes and small requests",
    )
    admit_max_lag_ms: float = setting(
        number(0, 60_000, "milliseconds"),
        "50",
        "past TABLESTREAM_STREAMS_ALWAYS_ADMITTED streams, a new one gets 503 (overloaded) "
        "while the process's threads wait longer than this for their turn (its CPU is "
        "spent); 0 = only the slot count limits streams",
    )
    streams_always_admitted: int = setting(
        integer(0, 4096),
        "8",
        "streams admitted whatever TABLESTREAM_ADMIT_MAX_LAG_MS says (a busy process still "
        "serves this many)",
    )
    admit_per_second: int = setting(
        integer(0, 100_000),
        "16",
        "past TABLESTREAM_STREAMS_ALWAYS_ADMITTED streams, the most new streams admitted in any "
        "second (a burst is admitted before its cost shows in the lag); 0 = no such limit",
    )
    small_rows: int = setting(
        integer(0, 1_000_000),
        "1000",
        "a table request with ?limit= up to this many rows is small: it needs no stream slot",
    )
    streams_per_client: int = setting(
        integer(0, 256),
        "0",
        "streams one client address may run at once (the forwarded address behind a trusted "
        "proxy); 0 = no cap",
    )
    retry_after: int = setting(
        integer(1, 3600, "seconds"),
        "2",
        "Retry-After of the 503 a stream request gets when no slot is free",
    )
    header_timeout: float = setting(
        number(0.5, 3600, "seconds"),
        "10",
        "seconds a connection has to send a complete request line and headers, from connecting "
        "(a kept-alive connection's next request: from its first byte); then it is closed",
    )
    header_initial_timeout: float = setting(
        number(0.5, 3600, "seconds"),
        "5",
        "seconds a request header has from its first byte before TABLESTREAM_HEADER_MIN_RATE "
        "extends it (one more second per that many bytes received, up to "
        "TABLESTREAM_HEADER_TIMEOUT from the connect)",
    )
    header_min_rate: int = setting(
        integer(0, 1024 * MIB, "bytes per second"),
        "500",
        "the slowest a request header may arrive (Apache's mod_reqtimeout MinRate): a trickling "
        "header is closed after TABLESTREAM_HEADER_INITIAL_TIMEOUT; 0 = only "
        "TABLESTREAM_HEADER_TIMEOUT applies",
    )
    keepalive_timeout: float = setting(
        number(0.5, 86400, "seconds"),
        "15",
        "seconds a kept-alive connection may sit idle between requests before it is closed",
    )
    min_send_rate: int = setting(
        integer(0, 1024 * MIB, "bytes per second"),
        "4096",
        "a stream whose client accepted less than this on average over the last "
        "TABLESTREAM_SEND_RATE_WINDOW is cut; 0 = only TABLESTREAM_WRITE_TIMEOUT applies",
    )
    send_rate_window: float = setting(
        number(1, 86400, "seconds"),
        "60",
        "the window over which TABLESTREAM_MIN_SEND_RATE is averaged",
    )
    shutdown_grace: float = setting(
        number(0, 3600, "seconds"),
        "30",
        "on SIGTERM, seconds in-flight streams get to finish before they are cut",
    )
    cut_marker_timeout: float = setting(
        number(0.5, 600, "seconds"),
        "5",
        "seconds a stream the server cuts gets for the bytes queued before its error marker and "
        "the marker to go out (a drain waits for them); then its socket is shut",
    )
    # -- PostgreSQL (extra "pg")
    pg_dsn: str = setting(
        text,
        "",
        "PostgreSQL connection string (libpq DSN or URI); empty = no PostgreSQL",
    )
    pg_tables: tuple[str, ...] = setting(
        pg_tables,
        "",
        "PostgreSQL tables or views to serve: TABLE, SCHEMA.TABLE, SCHEMA.*",
    )
    pg_pool_min: int = setting(integer(0, 100), "1", "PostgreSQL connections kept open when idle")
    pg_pool_max: int = setting(
        integer(1, 1000),
        "8",
        "most PostgreSQL connections at once = concurrent PostgreSQL streams per process",
    )
    pg_pool_timeout: float = setting(
        number(0.1, 300, "seconds"),
        "2",
        "seconds a stream waits for a free PostgreSQL connection before a 503 with Retry-After",
    )
    reuse_port: bool = setting(
        boolean,
        "false",
        "bind the port with SO_REUSEPORT so separately started processes can share it",
    )
    listen_fd: int = setting(
        integer(0, 65535),
        "0",
        "serve on this inherited listening socket instead of binding host:port (set by "
        "--processes for its children); 0 = bind",
    )
    shared_dir: str = setting(
        text,
        "",
        "directory where --processes children leave recent streams' outcomes, pages' "
        "progress reports and the failure budget for each other (set by --processes for its "
        "children); empty = none",
    )

    redis_url: str = setting(
        redis_url,
        "",
        "Redis shared by several instances (redis://[:password@]host:port/db): the per-client "
        "stream cap, the failure budget and the stream board (status, pages' reports) then hold "
        "across them; when it does not answer, each instance's own limits apply (needs the "
        "redis extra); empty = per instance",
    )
    redis_prefix: str = setting(
        redis_key_prefix,
        "tablestream:",
        "prefix of every Redis key the service writes (several services or tests may share one "
        "Redis)",
    )
    redis_timeout: float = setting(
        number(0.005, 5, "seconds"),
        "0.1",
        "seconds to connect to or hear from Redis before deciding with this instance's own state",
    )

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
        validate(settings)
        return settings

    def to_env(self) -> dict[str, str]:
        """Every setting as environment text: what a child process needs to rebuild these
        exact settings with ``from_env`` (command-line flags included)."""
        return {s.env: s.render(getattr(self, s.attr)) for s in SETTINGS}

    def to_log(self) -> str:
        """Every setting as ``NAME=value`` for the start-up log: what this process really runs
        with, defaults included, quoted as a shell would take them back, a PostgreSQL DSN's
        password replaced by ``***``."""
        return " ".join(
            f"{env}={shlex.quote(_no_password(value))}" for env, value in self.to_env().items()
        )

    @property
    def effective_stream_slots(self) -> int:
        """Stream slots: as set, or the threads minus a reserve of up to 4 (at least 1 slot)."""
        if self.stream_slots:
            return self.stream_slots
        return max(1, self.threads - min(4, max(1, self.threads // 3)))


_PASSWORD = re.compile(r"(password\s*=\s*)('[^']*'|\S+)|(://[^:/@\s]*:)[^@\s]+(@)", re.IGNORECASE)


def _no_password(value: str) -> str:
    """A DSN (key=value or URL form) with its password shown as ``***``."""
    return _PASSWORD.sub(lambda m: f"{m[1]}***" if m[1] else f"{m[3]}***{m[4]}", value)


# Read off the fields: the one list of settings, in declaration order.
SETTINGS: tuple[Setting, ...] = declared(Settings)


def settings_markdown() -> str:
    """The settings table of docs/settings.md, one row per setting (``tablestream settings``)."""
    return markdown_table(SETTINGS)
