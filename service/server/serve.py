"""``tablestream serve``: the settings (flags over the environment) made into a running server.

The one place the parts of ``server/`` are put together for a real process: the listening
socket (``listening``), waitress with its deadlines and per-client cap (``connections``), the
metrics port, the graceful shutdown (``watchdog``), or the supervisor for ``--processes``. It
logs the effective values at start, so an operator can see what bounds memory and concurrency
without reading code. ``bench/`` serves through ``serve_app`` too, so a benchmark measures the
server that runs in production, not a simplified copy.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import sys

from flask import Flask

from .. import __version__, create_app
from ..config import ConfigError, Settings
from .allocator import limit_malloc_arenas
from .connections import ClientCap, Deadlines, make_server, waitress_options
from .listening import (
    bind_errors_exit,
    check_open_file_limit,
    inherited_listening_socket,
    listening_socket,
)
from .metricsport import serve_metrics_port
from .processes import clean_multiprocess_dir, supervise
from .watchdog import install_graceful_shutdown

__all__ = ["serve_app", "serve_command", "warn_if_open"]

log = logging.getLogger("tablestream")


def serve_command(args: argparse.Namespace) -> int:
    """``tablestream serve``: one process serving, or ``--processes`` of them supervised."""
    environ = dict(os.environ)
    for flag in ("host", "port", "threads", "processes"):
        if (value := getattr(args, flag)) is not None:
            environ[f"TABLESTREAM_{flag.upper()}"] = value
    try:
        settings = Settings.from_env(environ)
        # Before create_app: Flask gives its logger a handler of its own only when none is
        # configured, and both printed every line of the service's loggers once each.
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s %(message)s",
        )
        if settings.processes > 1 and settings.prometheus_multiproc_dir:
            clean_multiprocess_dir(settings.prometheus_multiproc_dir)  # before any value is read
        app = create_app(settings)
    except ConfigError as exc:
        print(f"tablestream: configuration error: {exc}", file=sys.stderr)
        return 2
    if settings.processes > 1:
        return supervise(settings)
    return serve_app(app, settings)


def serve_app(app: Flask, settings: Settings) -> int:
    """Serve ``app`` with waitress as ``tablestream serve`` does: tuned, guarded, drained."""
    arenas_capped = limit_malloc_arenas(settings.malloc_arenas)  # before waitress starts threads
    options = waitress_options(settings)
    if settings.listen_fd:
        try:
            sock = inherited_listening_socket(settings.listen_fd)
        except ConfigError as exc:
            print(f"tablestream: configuration error: {exc}", file=sys.stderr)
            return 2
    else:
        with bind_errors_exit(settings.host, settings.port, "TABLESTREAM_HOST or TABLESTREAM_PORT"):
            sock = listening_socket(
                settings.host, settings.port, settings.backlog, reuse_port=settings.reuse_port
            )
    options["connection_limit"] = check_open_file_limit(settings)
    runtime = app.extensions["tablestream"]
    cap = ClientCap(
        settings.connections_per_client,
        settings.trusted_proxy,
        runtime.metrics.connections_rejected,
    )
    deadlines = Deadlines(
        settings.header_timeout,
        settings.header_initial_timeout,
        settings.header_min_rate,
        settings.keepalive_timeout,
        runtime.metrics.connections_closed,
    )
    server = make_server(app, sock, options, deadlines, cap, runtime.door)
    if settings.metrics_port and not (settings.listen_fd or settings.reuse_port):
        serve_metrics_port(settings, registry=runtime.metrics.registry)
    log.info(
        "tablestream serving %d tables on http://%s:%s/ (version %s) with waitress %s; "
        "holds %d connections, %d stream slots; malloc arenas %s",
        len(runtime.catalog),
        settings.host,
        settings.port,
        __version__,
        " ".join(f"{k}={v}" for k, v in sorted(options.items())),
        options["connection_limit"],
        runtime.admission.slots,
        settings.malloc_arenas if arenas_capped else "glibc default",
    )
    log.info("settings: %s", settings.to_log())
    warn_if_open(runtime.access.enabled, settings.host)
    if not settings.secret_file:
        log.info(
            "next rows links (_after) are signed with a secret made at start: they stop working "
            "when this process ends; set TABLESTREAM_SECRET_FILE to keep them (docs/production.md)"
        )
    if runtime.access.enabled:
        signal.signal(signal.SIGHUP, lambda _n, _f: runtime.access.request_reload())
    install_graceful_shutdown(server, runtime, settings.shutdown_grace)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0


def warn_if_open(access_enabled: bool, host: str) -> None:
    """One warning line when anyone who reaches a non-loopback address may read every table."""
    if access_enabled:
        return
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        log.warning(
            "access: OPEN - listening on %s with neither TABLESTREAM_TOKENS_FILE nor "
            "TABLESTREAM_AUTH_POLICY_FILE: anyone who reaches the port may read every table "
            "(docs/production.md)",
            host or "every address",
        )
