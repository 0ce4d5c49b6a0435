"""Who may read which table: API tokens, an authenticating proxy, and the door that checks them.

``grants`` (what a caller may do), ``tokens`` (the hashed tokens file), ``policy`` (the proxy's
groups → tables), ``budget`` (failures per client), ``peer`` (which forwarded headers to
believe) and ``gate`` (the check before every view). docs/production.md shows both ways in.
"""

from .gate import CALLER_KEY, REASONS, Access, install_access
from .peer import PeerMiddleware, read_proxy_secret

__all__ = [
    "CALLER_KEY",
    "REASONS",
    "Access",
    "PeerMiddleware",
    "install_access",
    "read_proxy_secret",
]
