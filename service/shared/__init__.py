"""What several instances share through Redis: the per-client cap, the failure budget, the board.

``store`` holds the connection and the rule that a failing Redis means local decisions, never a
refusal; ``leases`` the per-client stream cap; ``board`` the streams' status and pages' reports.
The failure budget's Redis bucket lives beside the others in access/budget.py. Nothing here is
used unless ``TABLESTREAM_REDIS_URL`` is set.
"""

from .board import RedisBoard
from .leases import ClientLeases
from .store import UNAVAILABLE, SharedStore

__all__ = ["UNAVAILABLE", "ClientLeases", "RedisBoard", "SharedStore"]
