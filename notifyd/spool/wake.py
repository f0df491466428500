"""Waking the watcher when a job on its own host ends, instead of waiting for its next poll.

The watcher polls the spools every `poll_interval` (0.5 s): jobs on other hosts
are seen no sooner, since NFS gives no change notice across clients. For jobs
on the watcher's own host, pingch writes a byte into wake/<host>.fifo after
recording the finish, and the watcher, which holds that FIFO open, runs a
round at once: the message leaves in tens of milliseconds instead of half a
poll interval on average.

A FIFO's data never touches the file server: on NFS each client has its own
pipe behind the same special file, and the name carries the host, so a poke
only ever reaches a watcher on the same machine. Where the filesystem cannot
hold a FIFO (sshfs), the watcher simply polls. Standard library only:
pingch calls poke() on every job.
"""

import os
import stat

from notifyd import paths


def poke(state_dir: str, host: str) -> None:
    """Wake a watcher on this host if one listens; never blocks, never raises.

    O_NONBLOCK makes open() fail at once (ENXIO) when no watcher holds the
    FIFO, and write() fail (EAGAIN) when earlier pokes fill it: either way
    the watcher's poll finds the event anyway.
    """
    try:
        fd = os.open(paths.wake_fifo_str(state_dir, host),
                     os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):  # never write into a file put there instead
            os.write(fd, b"\n")
    except OSError:
        pass
    finally:
        os.close(fd)


def listen(fifo: str) -> int | None:
    """Open (creating it 0600 if needed) the FIFO for reading; its fd, or None where impossible.

    Opened read-write: a FIFO whose last writer closed reads as end-of-file
    forever, which would make select() spin; holding a write end ourselves
    (fifo(7): O_RDWR on a FIFO is defined on Linux) keeps it quiet between pokes.
    """
    try:
        os.mkfifo(fifo, 0o600)
    except FileExistsError:
        pass
    except OSError:
        return None  # sshfs and some servers cannot make FIFOs: polling alone
    try:
        fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    st = os.fstat(fd)
    if not stat.S_ISFIFO(st.st_mode) or st.st_uid != os.getuid():
        os.close(fd)
        return None
    return fd


def drain(fd: int) -> None:
    """Empty the FIFO: one round answers every poke made so far."""
    try:
        while os.read(fd, 4096):
            pass
    except OSError:  # BlockingIOError once empty
        pass
