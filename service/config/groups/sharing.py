"""What several processes or instances share: a port (SO_REUSEPORT, an inherited socket), the
directory ``--processes`` children report through, and a Redis that makes per-client caps, the
failure budget and the stream board hold across instances (docs/redis.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..converters import boolean, integer, number, redis_key_prefix, redis_url, text
from ..declare import setting

__all__ = ["SharingSettings"]


@dataclass(frozen=True)
class SharingSettings:
    """What processes and instances share: a port, a directory, a Redis."""

    # -- the processes of one server (--processes) or of one host (SO_REUSEPORT)
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
    # -- instances sharing a Redis (docs/redis.md)
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
