"""API tokens: a file of SHA-256 hashes, checked in constant time, reloaded while serving.

The file (``TABLESTREAM_TOKENS_FILE``, TOML) never holds a token, only its hash::

    [[token]]
    name = "nightly-export"        # shown in the access log; the token never is
    sha256 = "9f86d081884c7d65…"   # hex SHA-256 of the token
    tables = ["orders", "reports.*"]
    scopes = ["metrics"]           # optional: may read /metrics
    hide = ["customers.email"]     # optional: columns this token does not see
    expires = 2027-01-01T00:00:00Z # optional

Why SHA-256 and not a slow password hash: tokens are 256 random bits made by
``tablestream token add`` (``secrets``), so nothing can be guessed from a fast hash, and a slow
hash (bcrypt's ~50 ms) on every request would be the easiest way to take the service down. A
presented token is hashed and compared with *every* stored hash by ``hmac.compare_digest``,
without stopping at a match, so the time taken says nothing about which bytes or which entry
were close; its length only changes the hashing by nanoseconds (one SHA-256 block up to 55
bytes).

The file is read again when it changes or on SIGHUP (``watched.py``). A change that does not
parse fails closed for what it changed: the tokens written unchanged in it keep working, a token
removed or edited in it is refused at once, a deleted file refuses every token. Streams already
running are never cut by a reload. Every ``hide`` entry must name a column of a served table
(``grants.ServedColumns``), at start and on reload: a hide that hides nothing is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .grants import Grant, GrantError, ServedColumns, check_name, grant_from
from .watched import WatchedFile

__all__ = ["TOKEN_PREFIX", "TokenEntry", "TokenFile", "add_token", "hash_token", "remove_token"]

TOKEN_PREFIX = "tst_"
"""Marks a tablestream token, so secret scanners and people can recognise one."""


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


@dataclass(frozen=True)
class TokenEntry:
    name: str
    digest: bytes
    grant: Grant
    expires: dt.datetime | None = None

    def expired(self, now: dt.datetime) -> bool:
        return self.expires is not None and now >= self.expires


def parse_expiry(where: str, value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise GrantError(f"{where}: expires={value!r} is not an ISO 8601 date-time") from None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if not isinstance(value, dt.datetime):
        raise GrantError(f"{where}: expires must be a date-time, got {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


def parse_tokens(text: str, source: str, served: ServedColumns | None = None) -> list[TokenEntry]:
    """The entries of a tokens file; GrantError names the first bad one.

    With ``served``, every hide entry must name a column of a served table.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GrantError(f"{source}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"token"})
    if unknown:
        raise GrantError(f"{source}: unknown key(s) {', '.join(unknown)}; expected [[token]]")
    entries: list[TokenEntry] = []
    names: set[str] = set()
    digests: set[bytes] = set()
    for i, entry in enumerate(data.get("token", []), start=1):
        where = f"{source}: token {i}"
        if not isinstance(entry, dict):
            raise GrantError(f"{where}: expected a [[token]] table")
        extra = sorted(set(entry) - {"name", "sha256", "tables", "scopes", "hide", "expires"})
        if extra:
            raise GrantError(f"{where}: unknown key(s) {', '.join(extra)}")
        name = check_name(where, entry.get("name"))
        hexdigest = entry.get("sha256")
        if not isinstance(hexdigest, str) or len(hexdigest) != 64:
            raise GrantError(f"{where} ({name}): sha256 must be 64 hex digits")
        try:
            digest = bytes.fromhex(hexdigest)
        except ValueError:
            raise GrantError(f"{where} ({name}): sha256 must be 64 hex digits") from None
        if name in names:
            raise GrantError(f"{where}: the name {name!r} is used twice")
        if digest in digests:
            raise GrantError(f"{where} ({name}): the same hash is given twice")
        names.add(name)
        digests.add(digest)
        where = f"{where} ({name})"
        grant = grant_from(where, entry, served)
        entries.append(TokenEntry(name, digest, grant, parse_expiry(where, entry.get("expires"))))
    return entries


class TokenFile:
    """The tokens of ``path``, kept current (``watched.py``); ``find`` checks a presented token."""

    def __init__(self, path: str, served: ServedColumns | None = None, broken: Any = None) -> None:
        self.path = path
        self._file = WatchedFile(
            path,
            "tokens",
            lambda text, source: parse_tokens(text, source, served),
            lambda entries: [e.name for e in entries],
            broken,
        )

    @property
    def entries(self) -> list[TokenEntry]:
        return list(self._file.current())

    def request_reload(self) -> None:
        """Read the file again before the next check (SIGHUP); safe from a signal handler."""
        self._file.request_reload()

    def find(self, token: str) -> tuple[TokenEntry | None, bool]:
        """The entry whose hash matches ``token`` (or None), and whether it has expired.

        Every stored hash is compared, match or not, so the time does not depend on which
        entry matched or how close a wrong token came.
        """
        entries = self._file.current()
        digest = hash_token(token)
        found = None
        for entry in entries:
            if hmac.compare_digest(digest, entry.digest):
                found = entry
        if found is None:
            return None, False
        return found, found.expired(dt.datetime.now(dt.UTC))


def _toml_string(value: str) -> str:
    # JSON's escaping is a subset of TOML's basic strings for the characters names allow.
    import json

    return json.dumps(value, ensure_ascii=False)


def _entry_text(entry: dict[str, Any]) -> str:
    lines = ["[[token]]"]
    for key in ("name", "sha256"):
        lines.append(f"{key} = {_toml_string(entry[key])}")
    for key in ("tables", "scopes", "hide"):
        if entry.get(key):
            lines.append(f"{key} = [{', '.join(_toml_string(v) for v in entry[key])}]")
    if entry.get("expires"):
        lines.append(f"expires = {entry['expires'].isoformat().replace('+00:00', 'Z')}")
    return "\n".join(lines) + "\n"


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` by a new file (mode 0600) in one rename: a reader sees old or new."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_HEADER = (
    "# tablestream API tokens (TABLESTREAM_TOKENS_FILE). Only SHA-256 hashes are stored here;\n"
    "# `tablestream token add NAME --tables ...` prints a new token once and appends its hash.\n"
)


def add_token(
    path: str,
    name: str,
    tables: Sequence[str],
    scopes: Sequence[str] = (),
    hide: Sequence[str] = (),
    expires: dt.datetime | None = None,
    served: ServedColumns | None = None,
) -> str:
    """Make a new token for ``name``, store its hash in ``path``; return the token (once).

    With ``served`` (the catalogue the server will have), each ``hide`` must name one of its
    columns, so the server will not refuse the file.
    """
    file = Path(path)
    text = file.read_text(encoding="utf-8") if file.exists() else _HEADER
    existing = parse_tokens(text, path)
    check_name("the new token", name)
    if any(e.name == name for e in existing):
        raise GrantError(f"{path}: a token named {name!r} exists; remove it first or pick another")
    if not tables and not scopes:
        raise GrantError("the new token would allow nothing; give --tables and/or --scope")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    entry = {
        "name": name,
        "sha256": hash_token(token).hex(),
        "tables": list(tables),
        "scopes": list(scopes),
        "hide": list(hide),
        "expires": expires,
    }
    grant_from(f"the new token ({name})", entry, served)
    new_text = text.rstrip("\n") + "\n\n" + _entry_text(entry)
    parse_tokens(new_text, path)  # never write a file the server would refuse
    _write_atomically(file, new_text)
    return token


def remove_token(path: str, name: str) -> None:
    """Drop the token named ``name`` from ``path`` (rewritten from its parsed entries)."""
    file = Path(path)
    entries = parse_tokens(file.read_text(encoding="utf-8"), path)
    if not any(e.name == name for e in entries):
        known = ", ".join(e.name for e in entries) or "none"
        raise GrantError(f"{path}: no token named {name!r}; known: {known}")
    blocks = [_HEADER]
    for e in entries:
        if e.name == name:
            continue
        blocks.append(
            _entry_text(
                {
                    "name": e.name,
                    "sha256": e.digest.hex(),
                    "tables": e.grant.tables,
                    "scopes": sorted(e.grant.scopes),
                    "hide": sorted(e.grant.hide),
                    "expires": e.expires,
                }
            )
        )
    _write_atomically(file, "\n".join(blocks))
