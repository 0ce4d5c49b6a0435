"""``tablestream serve``, ``demo-db``, ``token``, ``settings`` and the client ``download``.

``serve`` runs the app under waitress with every waitress knob taken from the settings (flags
override the environment) and logs the effective values at start, so an operator can see what
bounds memory and concurrency without reading code.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from flask import Flask

from .. import __version__, create_app
from ..config import SETTINGS, ConfigError, Settings, settings_markdown
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

if TYPE_CHECKING:
    from ..access.grants import ServedColumns

__all__ = ["main", "serve_app"]

log = logging.getLogger("tablestream")


def _settings_epilog() -> str:
    lines = ["environment variables (default in brackets):"]
    for s in SETTINGS:
        lines.append(f"  {s.env} [{s.default}]")
        lines.append(f"      {s.help}; {s.allowed}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tablestream", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"tablestream {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve the tables with waitress",
        epilog=_settings_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", help="listen address (TABLESTREAM_HOST)")
    serve.add_argument("--port", help="listen port (TABLESTREAM_PORT)")
    serve.add_argument("--threads", help="worker threads (TABLESTREAM_THREADS)")
    serve.add_argument("--processes", help="server processes on one port (TABLESTREAM_PROCESSES)")
    commands.add_parser("settings", help="print the settings table (markdown) of docs/settings.md")
    token = commands.add_parser(
        "token",
        help="manage the API tokens of TABLESTREAM_TOKENS_FILE",
        description="Tokens are stored as SHA-256 hashes; a new token is printed once, here.",
    )
    token_commands = token.add_subparsers(dest="token_command", required=True)
    add = token_commands.add_parser("add", help="make a token, print it once, store its hash")
    add.add_argument("name", help="the token's name, shown in the access log")
    # --tables and --hide append: with a plain option the last of several would silently win.
    add.add_argument(
        "--tables",
        action="append",
        default=[],
        help="tables it may read, names or globs; repeatable and/or comma-separated "
        "(orders,reports.*,*)",
    )
    add.add_argument("--scope", action="append", default=[], help="extra scope: metrics")
    add.add_argument(
        "--hide",
        action="append",
        default=[],
        help="columns it may not see, TABLE.COLUMN; repeatable and/or comma-separated; each "
        "must name a column of a table the TABLESTREAM_* settings serve",
    )
    add.add_argument(
        "--unchecked",
        action="store_true",
        help="do not check --hide against the served tables (a file made for another machine)",
    )
    add.add_argument("--expires", help="ISO 8601 date or date-time after which it is refused")
    remove = token_commands.add_parser("remove", help="remove a token by name")
    remove.add_argument("name")
    token_commands.add_parser("list", help="names, tables and scopes (never hashes)")
    for sub in (add, remove):
        sub.add_argument("--file", help="the tokens file [TABLESTREAM_TOKENS_FILE]")
    demo = commands.add_parser("demo-db", help="create the SQLite demo database")
    demo.add_argument(
        "path", nargs="?", help="SQLite file to create (replaced if it exists); omit with --dsn"
    )
    demo.add_argument("--dsn", help="load the demo data into this PostgreSQL database instead")
    demo.add_argument("--rows", type=int, default=1_000_000, help="orders to create [1000000]")
    demo.add_argument("--customers", type=int, default=10_000, help="customers [10000]")
    demo.add_argument("--if-missing", action="store_true", help="do nothing if PATH exists")
    download = commands.add_parser(
        "download",
        help="download a table as CSV or NDJSON, resuming after drains",
        description="Streams URL to FILE; when the stream is cut, follows the marker's resume "
        "point so FILE ends as an uninterrupted download would. The token, if any, is read "
        "from TABLESTREAM_TOKEN. Exit status: 0 complete, 2 bad URL or not CSV/NDJSON, "
        "3 refused (401/403/404/400), 4 cut with no resume point, 5 attempts exhausted.",
    )
    download.add_argument("url", help="the table's CSV or NDJSON URL, with its query")
    download.add_argument("file", help="the file to write (replaced)")
    download.add_argument(
        "--attempts", type=int, default=5, help="failed requests in a row before giving up [5]"
    )
    download.add_argument(
        "--timeout", type=float, default=60.0, help="seconds a read may wait for data [60]"
    )
    return parser


def _serve(args: argparse.Namespace) -> int:
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
    server = make_server(app, sock, options, deadlines, cap)
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


def _demo_db(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..sources.demo import create_demo_db

    if args.rows < 0 or args.customers < 1:
        print("tablestream demo-db: --rows must be >= 0 and --customers >= 1", file=sys.stderr)
        return 2
    if args.dsn:
        from ..sources.demo import create_demo_pg

        create_demo_pg(args.dsn, rows=args.rows, customers=args.customers)
        print(f"loaded {args.rows} orders into public.orders and public.customers of {args.dsn}")
        return 0
    if not args.path:
        print("tablestream demo-db: give a SQLite PATH or --dsn DSN", file=sys.stderr)
        return 2
    if args.if_missing and Path(args.path).exists():
        print(f"{args.path} exists; left as it is")
        return 0
    path = create_demo_db(args.path, rows=args.rows, customers=args.customers)
    print(
        f"created {path} with {args.rows} orders and {min(args.customers, max(args.rows, 1))} "
        "customers"
    )
    return 0


def _token(args: argparse.Namespace) -> int:
    from ..access.grants import GrantError
    from ..access.tokens import TokenFile, add_token, parse_expiry, remove_token

    path = getattr(args, "file", None) or os.environ.get("TABLESTREAM_TOKENS_FILE", "")
    if not path:
        print("tablestream token: give --file or set TABLESTREAM_TOKENS_FILE", file=sys.stderr)
        return 2
    try:
        if args.token_command == "add":
            expires = parse_expiry("--expires", args.expires) if args.expires else None
            hide = _listed(args.hide)
            token = add_token(
                path,
                args.name,
                tables=_listed(args.tables),
                scopes=args.scope,
                hide=hide,
                expires=expires,
                served=None if args.unchecked or not hide else _served_columns(),
            )
            print(token)
            print(
                f"token {args.name!r} added to {path}; this is the only time it is shown",
                file=sys.stderr,
            )
        elif args.token_command == "remove":
            remove_token(path, args.name)
            print(f"token {args.name!r} removed from {path}", file=sys.stderr)
        else:
            for entry in TokenFile(path).entries:
                grant = entry.grant
                expires = entry.expires.isoformat() if entry.expires else "never"
                print(
                    f"{entry.name}\ttables={','.join(grant.tables) or '-'}\t"
                    f"scopes={','.join(sorted(grant.scopes)) or '-'}\t"
                    f"hide={','.join(sorted(grant.hide)) or '-'}\texpires={expires}"
                )
    except (GrantError, OSError, ConfigError) as exc:
        print(f"tablestream token: {exc}", file=sys.stderr)
        return 2
    return 0


def _listed(values: Sequence[str]) -> list[str]:
    """Every item of repeated, comma-separated option values, in order."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _served_columns() -> ServedColumns:
    """The columns the server would serve with this environment's TABLESTREAM_* settings."""
    from ..access.grants import ServedColumns
    from ..sources import build_catalog

    try:
        catalog = build_catalog(Settings.from_env())
    except ConfigError as exc:
        raise ConfigError(
            f"cannot check --hide against the served tables ({exc}); set the TABLESTREAM_* "
            "settings the server runs with, or give --unchecked"
        ) from None
    return ServedColumns(catalog, lambda table: catalog[table].columns())


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "token":
        return _token(args)
    if args.command == "download":
        from ..download import main as download  # a client: none of the server's imports

        return download(args.url, args.file, args.attempts, args.timeout)
    if args.command == "settings":
        sys.stdout.write(settings_markdown())
        return 0
    return _demo_db(args)


if __name__ == "__main__":
    sys.exit(main())
