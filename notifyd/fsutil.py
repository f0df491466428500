"""Writing files so that a short write, a full disk or a crash never leaves half of one; reading
one's head without hanging on what was put in its place; the server's clock.

Standard library only: the lease code, which pingch imports, uses it.
"""

import os


def read_head(path: str, most: int, *, follow: bool = True) -> bytes:
    """Up to `most` bytes of a file (b"" if it cannot be read): os.read, cheaper than open() here.

    O_NONBLOCK: a FIFO put in the place of a file must not hang the job's
    pingch; a directory there reads as nothing. Without `follow`, a symlink
    reads as nothing too (a note in the shared lease dir is ours, never a link).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except (OSError, ValueError):  # ValueError: a NUL byte in the test's directory name
        return b""
    try:
        return os.read(fd, most)
    except OSError:  # a directory (EISDIR), an I/O error
        return b""
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """write() until every byte is written; a write that makes no progress is an error."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(f"write made no progress with {len(view)} bytes left")
        view = view[n:]


def append_line(path: str | os.PathLike[str], line: bytes) -> None:
    """Append one line with one write() on an O_APPEND descriptor, or raise.

    One write keeps the line whole against other appenders on this host; a
    short write would leave a partial line, so it is an error, not a retry.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        written = os.write(fd, line)
    finally:
        os.close(fd)
    if written != len(line):
        raise OSError(f"short write to {os.fspath(path)} ({written} of {len(line)} bytes)")


def write_new(path: str | os.PathLike[str], data: bytes) -> None:
    """Create or truncate `path` (0600, never through a symlink), write all of it, fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: bytes, tmp: str | os.PathLike[str]) -> None:
    """Replace `path` with `data` through `tmp` in the same directory (rename is atomic)."""
    try:
        write_new(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def server_now(directory: str, host: str) -> float:
    """The file server's clock, read as the mtime of a file we write now.

    Data writes get their mtime from the server on NFS (WRITE) and sshfs
    (sftp write), unlike utime(), which FUSE fills in from the client's clock.
    """
    # A random name created exclusively: the directory may be shared (the
    # procs dir), and a FIFO planted at a guessable name would hang us.
    path = os.path.join(directory, f".probe.{host}.{os.getpid()}.{os.urandom(6).hex()}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, b"probe\n")
        os.fsync(fd)
        # Close first: an NFS client reports the server's mtime after it flushed.
        os.close(fd)
        fd = -1
        return os.stat(path).st_mtime
    finally:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(path)
        except OSError:
            pass
