"""Who the client is and what it may read: the reverse proxy whose forwarded headers are believed
(docs/proxies.md), API tokens, the sign-in proxy's policy and secret, the failure budget, and
the secret that signs "next rows" links (docs/production.md).

The proxy settings sit with access because ``access/peer.py`` reads them to decide whose address
and identity a request carries; ``checks.py`` refuses them without a trusted proxy.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..converters import header_name, integer, proxy_address, proxy_headers, text
from ..declare import setting

__all__ = ["AccessSettings"]


@dataclass(frozen=True)
class AccessSettings:
    """Who is asking (behind which proxy) and what they may read."""

    # -- behind a reverse proxy (docs/proxies.md)
    trusted_proxy: str = setting(
        proxy_address,
        "",
        "address of the reverse proxy whose forwarded headers are believed (the access log "
        "and per-client limits then see the client); * trusts any peer (only if no client can "
        "reach the port directly); empty = none",
    )
    trusted_proxy_count: int = setting(
        integer(1, 32),
        "1",
        "proxy tiers in front of the service that append to X-Forwarded-For: the client is "
        "that many entries from the end; needs TABLESTREAM_TRUSTED_PROXY",
    )
    trusted_proxy_headers: tuple[str, ...] = setting(
        proxy_headers,
        "x-forwarded-for x-forwarded-proto",
        "forwarded headers believed from the trusted proxy; needs TABLESTREAM_TRUSTED_PROXY",
    )
    # -- who may read what (docs/production.md)
    tokens_file: str = setting(
        text,
        "",
        "TOML file of API tokens (hashes, names, tables, scopes) that clients send as "
        "'Authorization: Bearer'; reloaded when it changes or on SIGHUP; empty = no tokens",
    )
    auth_policy_file: str = setting(
        text,
        "",
        "TOML file mapping the authenticating proxy's groups (and users) to tables; needs "
        "TABLESTREAM_TRUSTED_PROXY and TABLESTREAM_AUTH_PROXY_SECRET_FILE; reloaded when it "
        "changes or on SIGHUP; empty = no proxy sign-in",
    )
    auth_proxy_secret_file: str = setting(
        text,
        "",
        "file holding the secret (32+ printable characters) the authenticating proxy sends in "
        "X-Tablestream-Proxy-Secret; its user and group headers are believed only with it; "
        "required with TABLESTREAM_AUTH_POLICY_FILE",
    )
    auth_user_header: str = setting(
        header_name,
        "X-Forwarded-User",
        "header in which the trusted authenticating proxy names the user",
    )
    auth_groups_header: str = setting(
        header_name,
        "X-Forwarded-Groups",
        "header in which the trusted authenticating proxy lists the user's groups "
        "(comma-separated)",
    )
    auth_failures_per_minute: int = setting(
        integer(0, 100_000),
        "30",
        "wrong credentials (malformed, unknown, expired; never a missing one) a client address "
        "may present per minute before further wrong ones get 429 instead of 401 (the budget "
        "refills continuously, is shared by the --processes children, and never refuses a "
        "valid credential); 0 = no limit",
    )
    secret_file: str = setting(
        text,
        "",
        "file of the deployment's secrets that sign 'next rows' links (_after), one per line, "
        "each at least 32 bytes (e.g. `openssl rand -hex 32`); the first signs, every one "
        "verifies (rotation); every instance of a deployment reads the same file; empty = a "
        "random secret made at start (one per server with --processes): links end at restart",
    )
