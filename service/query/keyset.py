"""Signed ``_after`` tokens: a "next rows" link continues the query it was made for, nothing else.

An ``_after`` token carries the last row's sort value and key, and the next slice starts right
after them. Unsigned, any client could write one: a caller whose token hides a table's key
could binary-search that key with ``?name=…&_after=<guess>`` in twenty requests (issue 28).
So a token is made here only, by the page that showed the row, and carries an HMAC-SHA256 over
its values and its *scope*: the table, the key column, the sort column and direction, every
filter (as given, order-free) and the search words. ``limit``, ``offset``, ``format`` and
``_col`` are not bound: a page's link may continue as a CSV download, a smaller page, or with
other columns.

The first secret signs and every secret verifies, so a secret is rotated by putting the new one
first and dropping the old one later, without a 400 in between. Each token names its secret by
a key id (3 bytes of a hash of it), which lets a refusal say *why*: made by another deployment
or before its secret changed, or made for another query (or altered). Every refusal is a
``QueryError`` (a 400) saying what is wrong and what is allowed.

Pure: no I/O, no Flask. The secrets come from ``config/secretfile.py``; the view opens a token
(``views/params.py``) and the page signs its link (``links.py``) with the same ``query_scope``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence

from .spec import MAX_VALUE_CHARS, Query, QueryError

__all__ = ["MIN_SECRET_BYTES", "NO_KEYSET", "Keysets", "query_scope"]

MIN_SECRET_BYTES = 32
NO_KEYSET = (
    "_after is not available on this table: it has no key to continue from; expected offset= "
    "instead."
)
"""The one refusal for a table without a key and for a caller who may not see the key: the two
must read alike, or the refusal itself would say that a hidden key exists."""

_VERSION = "1"
_LABEL = b"tablestream _after v1\x00"
_MAC_BYTES = 16  # 128 bits: a forgery is a 2^-128 guess per request
_MAX_TOKEN = 4 * MAX_VALUE_CHARS

_MALFORMED = (
    "_after is not a continuation token; expected the one in a page's 'next rows' link, or offset="
)
_OTHER_SECRET = (
    "_after was made by another deployment of this service, or before its secret changed; "
    "expected a 'next rows' link made here: drop _after to start again from the first row, "
    "or use offset="
)
_OTHER_QUERY = (
    "_after does not belong to this query: it was made for another table, key, sort or "
    "filter, or it was altered; expected this query's own 'next rows' link, or drop _after to "
    "start again from the first row"
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def query_scope(table: str, key: str, q: Query) -> bytes:
    """What a token continues: the table, its key, the sort and direction, and the filters as
    given (sorted, so their order in the URL does not matter). Canonical JSON, so two equal
    scopes are equal bytes."""
    filters = sorted([f.param, f.text] for f in q.filters)
    scope: list = [table, key, q.sort, q.descending, filters]
    if q.search is not None:  # appended only when searching: earlier tokens still open
        scope.append(["_search", q.search])
    return _json(scope)


class Keysets:
    """Signs and opens ``_after`` tokens with a deployment's secrets (the first one signs)."""

    def __init__(self, secrets: Sequence[bytes]) -> None:
        if not secrets or any(len(s) < MIN_SECRET_BYTES for s in secrets):
            raise ValueError(f"expected one or more secrets of {MIN_SECRET_BYTES} bytes or more")
        self._by_kid: dict[bytes, bytes] = {}
        for secret in secrets:
            self._by_kid.setdefault(hashlib.sha256(b"kid\x00" + secret).digest()[:3], secret)
        self._kid = next(iter(self._by_kid))

    @staticmethod
    def _mac(secret: bytes, scope: bytes, payload: bytes) -> bytes:
        message = _LABEL + scope + b"\x00" + payload
        return hmac.new(secret, message, hashlib.sha256).digest()[:_MAC_BYTES]

    def sign(self, scope: bytes, values: Sequence[str | None]) -> str:
        """The token for the row whose sort value and key (or key alone) are ``values``."""
        payload = _json(list(values))
        mac = self._mac(self._by_kid[self._kid], scope, payload)
        return ".".join((_VERSION + _b64(self._kid), _b64(payload), _b64(mac)))

    def open(self, token: str, scope: bytes) -> tuple[str | None, ...]:
        """The values ``token`` carries, if it was signed here for ``scope``; else QueryError."""
        parts = token.split(".")
        if len(token) > _MAX_TOKEN or len(parts) != 3 or not parts[0].startswith(_VERSION):
            raise QueryError(_MALFORMED)
        try:
            kid, payload, mac = (_unb64(part) for part in (parts[0][1:], parts[1], parts[2]))
        except (binascii.Error, ValueError):
            raise QueryError(_MALFORMED) from None
        secret = self._by_kid.get(kid)
        if secret is None:
            raise QueryError(_OTHER_SECRET)
        if not hmac.compare_digest(mac, self._mac(secret, scope, payload)):
            raise QueryError(_OTHER_QUERY)
        values = json.loads(payload)  # signed here: the JSON of a list of strings and nulls
        return tuple(values)
