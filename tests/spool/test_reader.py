"""Reading spool files from a saved cursor: complete lines only, resets, oversized lines."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from notifyd.spool.events import MAX_LINE
from notifyd.spool.reader import Chunk, Cursor, read_new


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def _lines(chunk: Chunk) -> list[bytes]:
    return [line for _, line in chunk.lines]


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "node5.jsonl"


def test_complete_lines_are_returned_with_their_offsets(spool: Path) -> None:
    spool.write_bytes(b"first\nsecond\n")
    chunk = read_new(str(spool), Cursor())
    assert chunk.lines == [(0, b"first"), (6, b"second")]
    assert chunk.oversized == []
    assert chunk.reset == ""


def test_cursor_offset_advances_past_what_was_read(spool: Path) -> None:
    spool.write_bytes(b"first\nsecond\n")
    cursor = Cursor()
    read_new(str(spool), cursor)
    assert cursor.offset == len(b"first\nsecond\n")


def test_second_read_returns_only_new_lines(spool: Path) -> None:
    spool.write_bytes(b"first\n")
    cursor = Cursor()
    read_new(str(spool), cursor)
    _append(spool, b"second\n")
    assert read_new(str(spool), cursor).lines == [(6, b"second")]


def test_read_with_nothing_new_returns_nothing(spool: Path) -> None:
    spool.write_bytes(b"first\n")
    cursor = Cursor()
    read_new(str(spool), cursor)
    chunk = read_new(str(spool), cursor)
    assert chunk.lines == []
    assert cursor.offset == 6


def test_partial_last_line_is_kept_for_later(spool: Path) -> None:
    spool.write_bytes(b"first\nsec")
    cursor = Cursor()
    assert _lines(read_new(str(spool), cursor)) == [b"first"]
    assert cursor.offset == 6


def test_partial_line_is_returned_once_completed(spool: Path) -> None:
    spool.write_bytes(b"first\nsec")
    cursor = Cursor()
    read_new(str(spool), cursor)
    _append(spool, b"ond\nthi")
    assert read_new(str(spool), cursor).lines == [(6, b"second")]
    _append(spool, b"rd\n")
    assert read_new(str(spool), cursor).lines == [(13, b"third")]
    assert read_new(str(spool), cursor).lines == []


def test_blank_lines_are_skipped(spool: Path) -> None:
    spool.write_bytes(b"\n  \nfirst\n\n")
    assert _lines(read_new(str(spool), Cursor())) == [b"first"]


def test_truncated_file_resets_and_says_so(spool: Path) -> None:
    spool.write_bytes(b"first\nsecond\nthird\n")
    cursor = Cursor()
    read_new(str(spool), cursor)
    spool.write_bytes(b"new\n")
    chunk = read_new(str(spool), cursor)
    assert "truncated" in chunk.reset
    assert chunk.lines == [(0, b"new")]
    assert cursor.offset == 4


def test_replaced_file_with_different_first_bytes_resets(spool: Path) -> None:
    spool.write_bytes(b"aaaa\n")
    cursor = Cursor()
    read_new(str(spool), cursor)
    replacement = spool.with_name("tmp")
    replacement.write_bytes(b"bbbb\ncccc\n")
    os.replace(replacement, spool)
    chunk = read_new(str(spool), cursor)
    assert "replaced" in chunk.reset
    assert _lines(chunk) == [b"bbbb", b"cccc"]


def test_replaced_file_of_the_same_size_resets(spool: Path) -> None:
    spool.write_bytes(b"aaaa\n")
    cursor = Cursor()
    read_new(str(spool), cursor)
    replacement = spool.with_name("tmp")
    replacement.write_bytes(b"bbbb\n")
    os.replace(replacement, spool)
    chunk = read_new(str(spool), cursor)
    assert "replaced" in chunk.reset
    assert _lines(chunk) == [b"bbbb"]


def test_growing_file_is_not_mistaken_for_a_replaced_one(spool: Path) -> None:
    spool.write_bytes(b"ab\n")  # shorter than the head that identifies the file
    cursor = Cursor()
    read_new(str(spool), cursor)
    _append(spool, b"x" * 100 + b"\n")
    chunk = read_new(str(spool), cursor)
    assert chunk.reset == ""
    assert chunk.lines == [(3, b"x" * 100)]


def test_oversized_line_between_good_lines_is_reported_and_good_lines_kept(spool: Path) -> None:
    big = b"x" * (MAX_LINE + 1)
    spool.write_bytes(b"good1\n" + big + b"\ngood2\n")
    chunk = read_new(str(spool), Cursor())
    assert chunk.oversized == [6]
    assert chunk.lines == [(0, b"good1"), (6 + len(big) + 1, b"good2")]


def test_line_of_exactly_max_line_bytes_is_not_oversized(spool: Path) -> None:
    line = b"x" * MAX_LINE
    spool.write_bytes(line + b"\n")
    chunk = read_new(str(spool), Cursor())
    assert chunk.oversized == []
    assert _lines(chunk) == [line]


def test_huge_partial_line_is_dropped_and_next_line_returned_after_its_newline(spool: Path) -> None:
    spool.write_bytes(b"good1\n" + b"x" * (MAX_LINE + 10))
    cursor = Cursor()
    first = read_new(str(spool), cursor)
    assert _lines(first) == [b"good1"]
    assert first.oversized == [6]
    _append(spool, b"y" * 50)  # still inside the oversized line: nothing to return
    assert read_new(str(spool), cursor).lines == []
    _append(spool, b"z\ngood2\n")
    after = read_new(str(spool), cursor)
    assert _lines(after) == [b"good2"]
    assert after.oversized == []


def test_huge_partial_line_is_not_kept_in_the_cursor(spool: Path) -> None:
    data = b"x" * (MAX_LINE + 10)
    spool.write_bytes(data)
    cursor = Cursor()
    read_new(str(spool), cursor)
    assert cursor.offset == len(data)
    assert cursor.skipping


def test_missing_file_returns_nothing(spool: Path) -> None:
    cursor = Cursor()
    chunk = read_new(str(spool), cursor)
    assert (chunk.lines, chunk.oversized, chunk.reset) == ([], [], "")
    assert cursor.offset == 0


@pytest.mark.timeout(10)
def test_fifo_path_returns_nothing_without_hanging(spool: Path) -> None:
    os.mkfifo(spool)
    chunk = read_new(str(spool), Cursor())
    assert chunk.lines == []


def test_directory_path_returns_nothing(spool: Path) -> None:
    spool.mkdir()
    assert read_new(str(spool), Cursor()).lines == []


def test_symlink_path_returns_nothing(spool: Path, tmp_path: Path) -> None:
    target = tmp_path / "target.jsonl"
    target.write_bytes(b"secret\n")
    spool.symlink_to(target)
    chunk = read_new(str(spool), Cursor())
    assert chunk.lines == []


def test_cursor_round_trips_through_json() -> None:
    cursor = Cursor(offset=123, head="abcd", skipping=True)
    assert Cursor.from_json(cursor.to_json()) == cursor


def test_cursor_from_garbage_is_a_fresh_cursor() -> None:
    assert Cursor.from_json(["not", "a", "dict"]) == Cursor()


@pytest.mark.parametrize("offset", [-5, None, "", "12", 1.5, True, [3]], ids=repr)
def test_cursor_with_an_offset_that_is_no_file_position_reads_from_the_top(
        spool: Path, offset: object) -> None:
    # Before: int() raised, or pread() failed with EINVAL, on every round.
    spool.write_bytes(b"first\nsecond\n")
    cursor = Cursor.from_json({"offset": offset, "head": "6669", "skipping": False})
    assert _lines(read_new(str(spool), cursor)) == [b"first", b"second"]


def test_cursor_with_a_head_that_is_not_text_forgets_the_head() -> None:
    assert Cursor.from_json({"offset": 6, "head": 1234, "skipping": "yes"}) == Cursor(6, "", False)


def test_a_read_returns_at_most_max_lines_lines_and_the_rest_on_the_next_reads(spool: Path) -> None:
    # Before: 4 MiB of two-byte lines came back as 2 million lines in one read.
    from notifyd.spool.reader import MAX_LINES

    spool.write_bytes(b"x\n" * (MAX_LINES + 5) + b"last\n")
    cursor = Cursor()
    first = read_new(str(spool), cursor)
    assert len(first.lines) == MAX_LINES and cursor.offset == 2 * MAX_LINES
    assert _lines(read_new(str(spool), cursor)) == [b"x"] * 5 + [b"last"]
