"""``tablestream token`` and ``tablestream demo-db``: the files a server reads, made offline.

Neither serves anything: ``token`` edits the tokens file (hashes only; a new token is shown
once, here) and ``demo-db`` creates the demo database. Their heavy imports (the demo data, the
token file, the catalog for checking ``--hide``) are made inside the commands, so ``serve`` and
the ``download`` client never load them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..config import ConfigError, Settings

if TYPE_CHECKING:
    from ..access.grants import ServedColumns

__all__ = ["demo_db_command", "token_command"]


def demo_db_command(args: argparse.Namespace) -> int:
    """``tablestream demo-db``: the demo data in a new SQLite file, or in PostgreSQL."""
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


def token_command(args: argparse.Namespace) -> int:
    """``tablestream token add|remove|list`` on the tokens file."""
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
