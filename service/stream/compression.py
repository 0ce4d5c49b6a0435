"""gzip, one HTTP chunk at a time, so a compressed page still renders while it arrives.

Compressing the whole body would need the whole body; the usual WSGI gzip middlewares either
buffer it or flush only at the end. Here every chunk the chunker makes is compressed and then
flushed with ``Z_SYNC_FLUSH``, so the browser can inflate and paint each chunk as it comes
(the page head included) while the deflate window still spans chunks. zlib (the standard
library) does exactly this; no package is needed.

Only a completed stream gets the gzip trailer (``finish``). A cut stream ends without it, so a
client's decompressor reports a truncated body instead of a short page that looks whole.
"""

from __future__ import annotations

import zlib

__all__ = ["GzipChunks"]

_GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer around the deflate stream


class GzipChunks:
    """A gzip stream fed chunk by chunk; each encoded chunk can be inflated on arrival."""

    def __init__(self, level: int) -> None:
        self._zlib = zlib.compressobj(level, zlib.DEFLATED, _GZIP_WBITS)

    def encode(self, chunk: bytes) -> bytes:
        return self._zlib.compress(chunk) + self._zlib.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        """The end of the deflate stream and the gzip trailer (CRC and length)."""
        return self._zlib.flush(zlib.Z_FINISH)
