"""What the server listens on and holds: address, threads, connection limits and timeouts, the
output buffer and request size limits passed to waitress (``server/connections.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..converters import KIB, MIB, integer, text
from ..declare import setting

__all__ = ["WaitressSettings"]


@dataclass(frozen=True)
class WaitressSettings:
    """The server: listening, threads, connections and buffers."""

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
        str(256 * KIB),
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
