"""``tablestream serve``, ``demo-db``, ``token``, ``settings`` and the client ``download``.

The console entry point (``[project.scripts]`` and ``python -m tablestream``): the command line
parsed, and each command handed to the module that does it. ``serve`` is in ``serve.py`` (every
waitress knob taken from the settings, flags over the environment); ``token`` and ``demo-db`` in
``admin.py``; ``download`` is a client (``download.py``) and imports none of the server.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..config import SETTINGS, settings_markdown
from .admin import demo_db_command, token_command
from .serve import serve_app, serve_command, warn_if_open

__all__ = ["main", "serve_app", "warn_if_open"]


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command of ``argv`` (the process's arguments if None); the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve_command(args)
    if args.command == "token":
        return token_command(args)
    if args.command == "download":
        from ..download import main as download  # a client: none of the server's imports

        return download(args.url, args.file, args.attempts, args.timeout)
    if args.command == "settings":
        sys.stdout.write(settings_markdown())
        return 0
    return demo_db_command(args)


if __name__ == "__main__":
    sys.exit(main())
