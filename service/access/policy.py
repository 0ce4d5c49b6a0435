"""Who may read what when an authenticating proxy (oauth2-proxy, an SSO gateway) is in front.

The proxy logs the person in and names them in a header (``TABLESTREAM_AUTH_USER_HEADER``,
default ``X-Forwarded-User``) with their groups in another (``TABLESTREAM_AUTH_GROUPS_HEADER``,
default ``X-Forwarded-Groups``, comma-separated as oauth2-proxy sends them). The policy file
(``TABLESTREAM_AUTH_POLICY_FILE``, TOML) maps groups, and if need be single users, to grants::

    [groups.analysts]
    tables = ["orders", "reports.*"]
    hide = ["customers.email"]

    [groups.sre]
    scopes = ["metrics"]

    [users."alice@example.com"]
    tables = ["customers"]

A person in no listed group and not listed by name may read nothing. The headers are believed
only from ``TABLESTREAM_TRUSTED_PROXY``: from any other peer they are stripped before the app
sees them (``access/peer.py``), so a client cannot name itself.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path

from .grants import Caller, Grant, GrantError, check_name, grant_from

__all__ = ["ProxyPolicy"]


class ProxyPolicy:
    """Grants by group and by user, read once at start-up."""

    def __init__(self, groups: dict[str, Grant], users: dict[str, Grant]) -> None:
        self.groups = groups
        self.users = users

    @classmethod
    def load(cls, path: str) -> ProxyPolicy:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise GrantError(f"{path}: cannot be read: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise GrantError(f"{path}: not valid TOML: {exc}") from None
        unknown = sorted(set(data) - {"groups", "users"})
        if unknown:
            raise GrantError(
                f"{path}: unknown key(s) {', '.join(unknown)}; expected [groups.NAME] and "
                '[users."NAME"] tables'
            )
        parsed: dict[str, dict[str, Grant]] = {"groups": {}, "users": {}}
        for kind in ("groups", "users"):
            section = data.get(kind, {})
            if not isinstance(section, dict):
                raise GrantError(f"{path}: {kind} must be a table of [{kind}.NAME] tables")
            for name, entry in section.items():
                where = f"{path}: {kind}.{name}"
                check_name(where, name)
                if not isinstance(entry, dict):
                    raise GrantError(f"{where}: expected a table with tables/hide/scopes")
                extra = sorted(set(entry) - {"tables", "hide", "scopes"})
                if extra:
                    raise GrantError(f"{where}: unknown key(s) {', '.join(extra)}")
                parsed[kind][name] = grant_from(where, entry)
        return cls(parsed["groups"], parsed["users"])

    def caller(self, user: str, groups: Iterable[str]) -> Caller:
        grants = [self.groups[g] for g in groups if g in self.groups]
        if user in self.users:
            grants.append(self.users[user])
        return Caller(name=user, via="proxy", grants=tuple(grants))
