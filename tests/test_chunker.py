"""The chunker alone: pure function from template pieces to byte chunks."""

from tablestream.stream.chunker import Chunker, StreamCut


def test_pieces_are_coalesced_into_chunks_of_at_least_the_target_size():
    chunker = Chunker(1024)
    pieces = ["<td>", "x" * 10, "</td>"] * 500
    chunks = list(chunker.chunks(pieces))
    assert b"".join(chunks) == "".join(pieces).encode()
    assert all(len(c) >= 1024 for c in chunks[:-1])
    assert all(len(c) < 1024 + 20 for c in chunks)


def test_flush_sends_the_head_at_once_then_coalesces():
    chunker = Chunker(4096)

    def template():
        yield "<head>"
        yield chunker.flush()
        for _ in range(1000):
            yield "<tr>row</tr>"

    chunks = list(chunker.chunks(template()))
    assert chunks[0] == b"<head>"
    assert all(len(c) >= 4096 for c in chunks[1:-1])


def test_a_flush_after_the_head_sends_what_is_buffered_at_once_and_nothing_else_changes():
    chunker = Chunker(1000)

    def template():
        yield "<head>"
        yield chunker.flush()
        yield "a" * 300
        yield "b" * 300 + chunker.flush()  # a count that must leave now (stream/pacing.py)
        yield "c" * 2500  # then chunks of the target size again, the rest carried over
        yield "d" * 10 + chunker.flush()
        yield chunker.flush()  # nothing buffered: no empty chunk

    chunks = list(chunker.chunks(template()))
    assert chunks == [b"<head>", b"a" * 300 + b"b" * 300, b"c" * 1000, b"c" * 1000,
                      b"c" * 500 + b"d" * 10]  # fmt: skip


def test_size_is_counted_so_multibyte_text_never_makes_small_chunks():
    chunker = Chunker(1000)
    pieces = ["表"] * 5000  # 3 bytes each in UTF-8
    chunks = list(chunker.chunks(pieces))
    assert b"".join(chunks).decode() == "表" * 5000
    assert all(len(c) >= 1000 for c in chunks[:-1])


def test_pieces_larger_than_a_chunk_are_cut_to_the_target_size_and_the_rest_carried_over():
    chunker = Chunker(1000)
    pieces = ["<head>", chunker.flush(), "a" * 2500, "b" * 2500, "c" * 10]
    chunks = list(chunker.chunks(pieces))
    assert b"".join(chunks) == "".join(pieces).encode()
    assert [len(c) for c in chunks] == [6, 1000, 1000, 1000, 1000, 1000, 10]


def test_empty_stream_gives_no_chunk():
    assert list(Chunker(1024).chunks(["", ""])) == []


def test_what_was_buffered_when_the_pieces_fail_is_kept_for_the_caller():
    chunker = Chunker(1000)

    def pieces():
        yield "<head>"
        yield chunker.flush()
        yield "a" * 1500
        yield "<tr>whole row</tr>"
        raise ConnectionError("source gone")

    sent = []
    try:
        for chunk in chunker.chunks(pieces()):
            sent.append(chunk)
    except ConnectionError:
        pass
    assert sent == [b"<head>", b"a" * 1000]
    assert chunker.unsent == b"a" * 500 + b"<tr>whole row</tr>"


def test_a_stopped_chunker_ends_after_whole_pieces_and_keeps_them_for_the_marker():
    chunker = Chunker(1000)
    batches = [f"row{i:04d}," * 50 + "\n" for i in range(100)]  # one piece = one batch of rows
    chunks = chunker.chunks(batches)
    sent = [next(chunks), next(chunks)]
    chunker.stop("the server is shutting down")
    try:
        sent.extend(chunks)
    except StreamCut as cut:
        assert str(cut) == "the server is shutting down"
    else:
        raise AssertionError("a stopped chunker went on to the end")
    text = (b"".join(sent) + chunker.unsent).decode()
    assert text.endswith("\n") and batches[0] in text  # whole batches only, no half row
    assert text == "".join(batches[: text.count("\n")])
    assert text.count("\n") < len(batches)  # it stopped early
