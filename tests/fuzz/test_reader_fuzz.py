"""The spool reader (spool/reader.py) against a file written in random pieces, cut short and replaced.

A model keeps what the file holds; after the reads, what read_new returned
since it last started again from the top must be exactly the file's
complete lines (not blank, within MAX_LINE), once each and in order, and
the oversized ones counted. Most cases use small bounds (MAX_LINE 16,
MAX_READ 64, MAX_LINES 3) so that a few dozen bytes cross every boundary;
the rest use the real ones.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from fuzz.hostile import cases
from hypothesis import event, given
from hypothesis import strategies as st

from notifyd.spool import reader
from notifyd.spool.reader import Cursor, read_new

# Bytes that make lines hard: newlines, CR, NUL, invalid UTF-8, blanks.
PIECES = [b"\n", b"\r\n", b"\r", b"\x00", b"\xff\xfe", b"\xc3", b" ", b"\t", b"{", b'"v":1}', b"\xe2\x80\xae"]
chunk = st.one_of(
    st.binary(max_size=40),
    st.lists(st.sampled_from(PIECES) | st.binary(min_size=1, max_size=5), max_size=12).map(b"".join),
    st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=3), st.integers(1, 90)),
)
op = st.one_of(
    st.tuples(st.just("append"), chunk),
    st.tuples(st.just("read"), st.none()),
    st.tuples(st.just("truncate"), st.integers(0, 200)),
    st.tuples(st.just("replace"), chunk),
)


@contextmanager
def _bounds(small: bool) -> Iterator[tuple[int, int]]:
    if not small:
        yield reader.MAX_LINE, reader.MAX_READ
        return
    with mock.patch.object(reader, "MAX_LINE", 16), mock.patch.object(reader, "MAX_READ", 64), \
            mock.patch.object(reader, "MAX_LINES", 3):
        yield 16, 64


def _expected(content: bytes, max_line: int) -> tuple[list[tuple[int, bytes]], int]:
    """(complete lines worth returning, with offsets; lines counted oversized) of a file."""
    lines, oversized, pos = [], 0, 0
    while True:
        nl = content.find(b"\n", pos)
        if nl < 0:
            break
        line = content[pos:nl]
        if len(line) > max_line:
            oversized += 1
        elif line.strip():
            lines.append((pos, line))
        pos = nl + 1
    if len(content) - pos > max_line:
        oversized += 1  # a partial line already too long is dropped as soon as it is seen
    return lines, oversized


class Reading:
    """One file, its model, and the reader's results since it last started from the top."""

    def __init__(self, path: str, max_line: int, max_read: int) -> None:
        self.path, self.max_line, self.max_read = path, max_line, max_read
        self.content = b""
        self.cursor = Cursor()
        self.got: list[tuple[int, bytes]] = []
        self.oversized = 0
        with open(path, "wb"):
            pass

    def write(self, data: bytes, mode: str = "ab") -> None:
        with open(self.path, mode) as f:
            f.write(data)
        self.content = data if mode == "wb" else self.content + data

    def read(self) -> Any:
        before = self.cursor.offset
        with mock.patch.object(reader.os, "pread", wraps=os.pread) as pread:
            chunk = read_new(self.path, self.cursor)
        asked = [c.args[1] for c in pread.call_args_list]
        assert max(asked, default=0) <= self.max_read, "memory per read is bounded by MAX_READ"
        assert len(chunk.lines) + len(chunk.oversized) <= reader.MAX_LINES, "and by MAX_LINES"
        if chunk.reset:
            self.got, self.oversized, before = [], 0, 0
        assert 0 <= self.cursor.offset <= len(self.content), "the cursor never goes past the end"
        assert self.cursor.offset - before <= self.max_read, "one read takes at most MAX_READ bytes"
        for offset, line in chunk.lines:
            assert self.content[offset:offset + len(line)] == line
            assert len(line) <= self.max_line
        self.got.extend(chunk.lines)
        self.oversized += len(chunk.oversized)
        return chunk

    def read_to_the_end(self) -> None:
        for _ in range(len(self.content) + 3):
            before = (self.cursor.offset, self.cursor.skipping)
            chunk = self.read()
            if (self.cursor.offset, self.cursor.skipping) == before and not chunk.lines:
                return
        raise AssertionError("the reader stopped making progress")


@cases(500)
@given(ops=st.lists(op, max_size=25), small=st.booleans() | st.just(True))
def test_every_complete_line_is_returned_once_in_order_and_oversized_ones_counted(
        ops: list[tuple[str, Any]], small: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp, _bounds(small) as (max_line, max_read):
        r = Reading(os.path.join(tmp, "node5.jsonl"), max_line, max_read)
        for kind, arg in ops:
            if kind == "append":
                r.write(arg)
            elif kind == "read":
                r.read()
            elif kind == "truncate" and r.cursor.offset:
                # Cut below what was read, and read at once: a file that grows
                # back past the cursor with the same first bytes cannot be told
                # from one that was only appended to.
                size = arg % r.cursor.offset
                os.truncate(r.path, size)
                r.content = r.content[:size]
                assert r.read().reset
                event("truncated below the cursor")
            elif kind == "replace" and arg and r.content and arg[:1] != r.content[:1]:
                # Another file under the name, its first bytes different.
                seen = r.cursor.offset > 0 or r.cursor.head != ""
                r.write(arg, "wb")
                assert bool(r.read().reset) == seen
                event("replaced")
        r.read_to_the_end()
        lines, oversized = _expected(r.content, max_line)
        assert r.got == lines
        assert r.oversized == oversized
        event(f"oversized: {min(oversized, 2)}, skipping: {r.cursor.skipping}, small bounds: {small}")


@cases(300)
@given(lines=st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=30),
       cuts=st.lists(st.integers(0, 2000), max_size=10))
def test_lines_appended_in_random_chunks_come_back_exactly_as_written(
        lines: list[bytes], cuts: list[int]) -> None:
    data = b"".join(line + b"\n" for line in lines)
    with tempfile.TemporaryDirectory() as tmp:
        r = Reading(os.path.join(tmp, "node5.jsonl"), reader.MAX_LINE, reader.MAX_READ)
        for cut in sorted(c % (len(data) + 1) for c in cuts):
            r.write(data[len(r.content):cut])
            r.read()
        r.write(data[len(r.content):])
        r.read_to_the_end()
        assert [line for _, line in r.got] == [line for line in lines if line.strip()]
        assert r.oversized == 0


@cases(200)
@given(st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=5), st.lists(st.integers())),
       st.one_of(st.none(), st.integers(), st.text(max_size=200), st.lists(st.integers())),
       st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=3)))
def test_a_cursor_from_any_saved_json_reads_the_file_from_the_top_unless_its_offset_is_a_position(
        offset: Any, head: Any, skipping: Any) -> None:
    content = b"first\nsecond\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "node5.jsonl")
        with open(path, "wb") as f:
            f.write(content)
        cursor = Cursor.from_json({"offset": offset, "head": head, "skipping": skipping})
        chunk = read_new(path, cursor)
    assert 0 <= cursor.offset <= len(content)
    for at, line in chunk.lines:  # a tail of a line at most: a saved position is trusted
        assert content[at:at + len(line) + 1] == line + b"\n"
    is_position = isinstance(offset, int) and not isinstance(offset, bool) and offset >= 0
    if not is_position:
        assert [line for _, line in chunk.lines] == [b"first", b"second"]
