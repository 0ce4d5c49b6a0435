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

The file is watched and reloaded exactly like the tokens file (``watched.py``): a change is in
force within a second or at SIGHUP, and a change that does not parse fails closed for the groups
and users it removed or edited.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .grants import Caller, Grant, GrantError, ServedColumns, check_name, grant_from
from .watched import WatchedFile

__all__ = ["Policy", "ProxyPolicy", "parse_policy"]


@dataclass(frozen=True)
class Policy:
    """Grants by group and by user, as one version of the file says."""

    groups: dict[str, Grant] = field(default_factory=dict)
    users: dict[str, Grant] = field(default_factory=dict)

    def names(self) -> list[str]:
        return [f"groups.{g}" for g in self.groups] + [f"users.{u}" for u in self.users]


def parse_policy(text: str, source: str, served: ServedColumns | None = None) -> Policy:
    """The policy a file's text gives; GrantError names the first bad entry."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GrantError(f"{source}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"groups", "users"})
    if unknown:
        raise GrantError(
            f"{source}: unknown key(s) {', '.join(unknown)}; expected [groups.NAME] and "
            '[users."NAME"] tables'
        )
    policy = Policy()
    for kind, parsed in (("groups", policy.groups), ("users", policy.users)):
        section = data.get(kind, {})
        if not isinstance(section, dict):
            raise GrantError(f"{source}: {kind} must be a table of [{kind}.NAME] tables")
        for name, entry in section.items():
            where = f"{source}: {kind}.{name}"
            check_name(where, name)
            if not isinstance(entry, dict):
                raise GrantError(f"{where}: expected a table with tables/hide/scopes")
            extra = sorted(set(entry) - {"tables", "hide", "scopes"})
            if extra:
                raise GrantError(f"{where}: unknown key(s) {', '.join(extra)}")
            parsed[name] = grant_from(where, entry, served)
    return policy


class ProxyPolicy:
    """The policy file ``path``, kept current; ``caller`` names a signed-in person's grants."""

    def __init__(self, path: str, served: ServedColumns | None = None, broken: Any = None) -> None:
        self.path = path
        self._file = WatchedFile(
            path,
            "policy",
            lambda text, source: parse_policy(text, source, served),
            Policy.names,
            broken,
        )

    def request_reload(self) -> None:
        """Read the file again before the next check (SIGHUP); safe from a signal handler."""
        self._file.request_reload()

    def caller(self, user: str, groups: Iterable[str]) -> Caller:
        policy = self._file.current()
        grants = [policy.groups[g] for g in groups if g in policy.groups]
        if user in policy.users:
            grants.append(policy.users[user])
        return Caller(name=user, via="proxy", grants=tuple(grants))
