"""Reading the per-host spool files (and the legacy file) from a saved position.

Other hosts' writes are invisible to inotify and to a descriptor kept open
(NFS close-to-open: a reader sees growth when it re-opens), so each poll
stats the file, re-opens it and reads only complete new lines.
"""

import os
import stat
from dataclasses import dataclass

from notifyd.spool.events import MAX_LINE

# Read at most this much of one file per poll, so a huge file cannot take the
# watcher's memory; the rest comes on the next polls.
MAX_READ = 4 * 1024 * 1024
# And return at most this many lines (and oversized ones) per poll: 4 MiB of
# two-byte lines would be 2 million of them, ~250 MB as Python objects and
# half a minute of parsing and logging in one round.
MAX_LINES = 10_000
# Bytes at the start of a file that identify it: when they change, the file
# was replaced (inode numbers are not stable on sshfs, so they are not used).
HEAD = 64


@dataclass
class Cursor:
    """Where reading one file stopped."""

    offset: int = 0
    head: str = ""  # hex of the first HEAD bytes seen
    skipping: bool = False  # inside an oversized line: drop bytes up to the next newline

    def to_json(self) -> dict[str, object]:
        return {"offset": self.offset, "head": self.head, "skipping": self.skipping}

    @classmethod
    def from_json(cls, data: object) -> "Cursor":
        """The saved cursor; a part that is not what to_json writes means reading from the top.

        (A negative or non-integer offset would make every read of the file
        fail, round after round; the finished-job ids keep a re-read quiet.)
        """
        if not isinstance(data, dict):
            return cls()
        offset, head, skipping = data.get("offset", 0), data.get("head", ""), data.get("skipping")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            return cls()
        if not isinstance(head, str) or len(head) > 2 * HEAD:
            head = ""
        return cls(offset, head, skipping is True)


@dataclass
class Chunk:
    """What one read produced."""

    lines: list[tuple[int, bytes]]  # (byte offset, line without newline)
    oversized: list[int]  # offsets of lines dropped for exceeding MAX_LINE
    reset: str = ""  # why reading restarted from the top ('' when it did not)


def read_new(path: str, cursor: Cursor, follow_symlinks: bool = False) -> Chunk:
    """Read complete new lines of `path` after `cursor`, advancing it in place.

    A file that shrank or whose first bytes changed was truncated or replaced:
    reading starts again from its top (the watcher's done-set keeps that from
    repeating notifications). Symlinks are not followed unless asked (the
    user's own ~/.pingchilling may well be one); a path that is not a regular
    file, or cannot be opened, yields nothing.
    """
    chunk = Chunk([], [])
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError:
        return chunk
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return chunk
        head = os.pread(fd, HEAD, 0).hex()
        if st.st_size < cursor.offset:
            chunk.reset = f"truncated from {cursor.offset} to {st.st_size} bytes"
        elif cursor.head and not head.startswith(cursor.head) and not cursor.head.startswith(head):
            chunk.reset = "replaced by another file"
        if chunk.reset:
            cursor.offset, cursor.skipping = 0, False
        cursor.head = head
        if st.st_size <= cursor.offset:
            return chunk
        data = os.pread(fd, min(st.st_size - cursor.offset, MAX_READ), cursor.offset)
    finally:
        os.close(fd)

    _take_lines(data, cursor, chunk)
    return chunk


def _take_lines(data: bytes, cursor: Cursor, chunk: Chunk) -> None:
    """Move the complete lines of `data` (read at `cursor.offset`) into `chunk`, advancing the cursor."""
    pos = 0
    if cursor.skipping:
        nl = data.find(b"\n")
        if nl < 0:
            cursor.offset += len(data)
            return
        pos = nl + 1
        cursor.skipping = False
    while len(chunk.lines) + len(chunk.oversized) < MAX_LINES:
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        line = data[pos:nl]
        if len(line) > MAX_LINE:
            chunk.oversized.append(cursor.offset + pos)
        elif line.strip():
            chunk.lines.append((cursor.offset + pos, line))
        pos = nl + 1
    else:
        cursor.offset += pos  # the rest of the lines: next poll
        return
    rest = len(data) - pos
    if rest > MAX_LINE:
        # A partial line already longer than any event can be: drop it now,
        # and the rest of it when its newline arrives.
        chunk.oversized.append(cursor.offset + pos)
        cursor.skipping = True
        pos = len(data)
    cursor.offset += pos
