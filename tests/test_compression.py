"""gzip chunk by chunk on ISA-L or zlib: every chunk inflates on arrival, the whole is the page."""

from __future__ import annotations

import gzip
import zlib

import pytest

from tablestream.stream import compression
from tablestream.stream.compression import GzipChunks, compressor_for

CHUNKS = [(f"<tr><td>{i}</td><td>Zoë &amp; café</td></tr>\n" * 700).encode() for i in range(40)]


def _inflate_chunk_by_chunk(level: int) -> bytes:
    encoder = GzipChunks(level)
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    sent = b""
    for chunk in CHUNKS:
        encoded = encoder.encode(chunk)
        assert inflate.decompress(encoded) == chunk, "each chunk must inflate on arrival"
        sent += encoded
    sent += encoder.finish()
    assert gzip.decompress(sent) == b"".join(CHUNKS)
    return sent


@pytest.mark.parametrize("level", range(1, 10))
def test_every_level_streams_inflatable_gzip_chunks(level):
    sent = _inflate_chunk_by_chunk(level)
    assert sent[:2] == b"\x1f\x8b", "a gzip header, not a raw deflate or zlib stream"


def test_levels_one_to_three_use_isal_and_higher_levels_zlib():
    isal_zlib = pytest.importorskip("isal.isal_zlib")
    assert [compressor_for(level) for level in (1, 2, 3)] == [isal_zlib] * 3
    assert [compressor_for(level) for level in (4, 6, 9)] == [zlib] * 3


@pytest.mark.parametrize("level", [1, 9])
def test_without_isal_zlib_does_the_same(monkeypatch, level):
    monkeypatch.setattr(compression, "isal_zlib", None)
    assert compressor_for(level) is zlib
    _inflate_chunk_by_chunk(level)


def test_every_level_compresses_at_least_as_well_as_zlib_did():
    page = b"".join(CHUNKS)
    for level in range(1, 10):
        ours = len(_inflate_chunk_by_chunk(level))
        plain_zlib = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        theirs = sum(
            len(plain_zlib.compress(c) + plain_zlib.flush(zlib.Z_SYNC_FLUSH)) for c in CHUNKS
        )
        assert ours <= theirs + len(plain_zlib.flush()) + 64, (level, ours, theirs)
        assert len(page) / ours > 5
