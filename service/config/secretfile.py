"""The deployment's secret (``TABLESTREAM_SECRET_FILE``): read at start-up, or made for one run.

The secret signs the "next rows" links (``_after``, ``query/keyset.py``). Every process and
instance of one deployment must hold the same one, or a link made by one is refused by the
next: so it lives in a file, one secret per line, the first signing and every one verifying
(rotation: put the new one first, drop the old one once no link made with it matters). A bad
file stops start-up with the path and the line number, never the secret itself; only the path
ever travels (settings, ``to_env``, the children's environment), never the secret.

Without a file, a single process makes a random secret at start (links then end with the
process), and ``--processes`` makes one file for its children (``write_secret``), so that
every child accepts the others' links.
"""

from __future__ import annotations

import os
import secrets

from ..query.keyset import MIN_SECRET_BYTES
from .converters import ConfigError

__all__ = ["read_secrets", "write_secret"]


def read_secrets(path: str) -> list[bytes]:
    """The secrets of ``path`` in order (blank lines skipped); ConfigError saying what is wrong."""
    try:
        with open(path, "rb") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise ConfigError(
            f"TABLESTREAM_SECRET_FILE={path!r} cannot be read ({exc.strerror}); expected a "
            "readable file with one secret per line"
        ) from None
    found = []
    for number, line in enumerate(lines, 1):
        secret = line.strip()
        if not secret:
            continue
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"TABLESTREAM_SECRET_FILE={path!r}: the secret on line {number} is "
                f"{len(secret)} bytes; expected at least {MIN_SECRET_BYTES} random bytes per "
                "line, e.g. from `openssl rand -hex 32`"
            )
        found.append(secret)
    if not found:
        raise ConfigError(
            f"TABLESTREAM_SECRET_FILE={path!r} holds no secret; expected one per line, at least "
            f"{MIN_SECRET_BYTES} bytes each (e.g. `openssl rand -hex 32`), the first one signing"
        )
    return found


def write_secret(path: str) -> None:
    """Write a new random secret to ``path`` (a new file, readable by this user only)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
