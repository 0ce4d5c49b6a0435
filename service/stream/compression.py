"""gzip, one HTTP chunk at a time, so a compressed page still renders while it arrives.

Compressing the whole body would need the whole body; the usual WSGI gzip middlewares either
buffer it or flush only at the end. Here every chunk the chunker makes is compressed and then
flushed with ``Z_SYNC_FLUSH``, so the browser can inflate and paint each chunk as it comes
(the page head included) while the deflate window still spans chunks.

The compressor is ISA-L's igzip (the ``isal`` package, ``isal_zlib``: the same ``compressobj``
and flush modes as ``zlib``, the same gzip format) where its wheel is installed: on the page,
with a sync flush every 32 KiB, its level 1 is ~5x faster than zlib's level 1 and compresses
better (6.1x against 5.6x; docs/formats.md). ISA-L has levels 0-3 only, so
``TABLESTREAM_GZIP_LEVEL`` 1-3 use ISA-L at that level and 4-9 use the standard library's zlib
at that level; every level compresses at least as well as zlib did at it. Without ``isal``
(no wheel for the platform) every level is zlib's, as before.

Only a completed stream gets the gzip trailer (``finish``). A cut stream ends without it, so a
client's decompressor reports a truncated body instead of a short page that looks whole.
"""

from __future__ import annotations

import zlib
from types import ModuleType

try:
    from isal import isal_zlib
except ImportError:  # no wheel for this platform: the standard library does the same, slower
    isal_zlib = None

__all__ = ["ISAL_MAX_LEVEL", "GzipChunks", "compressor_for"]

_GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer around the deflate stream
ISAL_MAX_LEVEL = 3
"""The highest level ISA-L has; ``TABLESTREAM_GZIP_LEVEL`` above it goes to zlib."""


def compressor_for(level: int) -> ModuleType:
    """The zlib-like module that compresses at ``level``: ``isal_zlib`` for 1-3 when installed."""
    if isal_zlib is not None and level <= ISAL_MAX_LEVEL:
        return isal_zlib
    return zlib


class GzipChunks:
    """A gzip stream fed chunk by chunk; each encoded chunk can be inflated on arrival."""

    def __init__(self, level: int) -> None:
        module = compressor_for(level)
        self._compressor = module.compressobj(level, module.DEFLATED, _GZIP_WBITS)
        self._sync = module.Z_SYNC_FLUSH
        self._finish = module.Z_FINISH

    def encode(self, chunk: bytes) -> bytes:
        return self._compressor.compress(chunk) + self._compressor.flush(self._sync)

    def finish(self) -> bytes:
        """The end of the deflate stream and the gzip trailer (CRC and length)."""
        return self._compressor.flush(self._finish)
