"""What keeps one client or one overload from taking the service down: stream slots and the
admission limits, per-client caps, header and keep-alive deadlines, the slow-reader cuts, and
the shutdown grace (docs/reliability.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..converters import MIB, integer, number
from ..declare import setting

__all__ = ["ReliabilitySettings"]


@dataclass(frozen=True)
class ReliabilitySettings:
    """Admission, deadlines and cuts."""

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
        "proxy); 0 = no cap. Past it: 429 + Retry-After",
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
