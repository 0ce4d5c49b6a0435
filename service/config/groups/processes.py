"""How each server process runs and reports: its malloc arenas and log level, where ``/metrics``
is served, the directory prometheus_client shares between processes, and how many processes
``tablestream serve`` runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..converters import integer, text
from ..declare import setting

__all__ = ["ProcessSettings"]


@dataclass(frozen=True)
class ProcessSettings:
    """The server processes: memory, log level, metrics, how many."""

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
