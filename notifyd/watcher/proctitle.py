"""The background watcher's name in ps, top and `notifyd procs`: `notifyd watcher (USER)`.

Spawned as `python3 -c "import sys; sys.path[:1] = …" watch --background`
(launch.py says why -c), it would show as that program text, the same at 80
columns as a `pingch -d` job of old, and a labmate may kill the mystery
process. setproctitle rewrites the argv that /proc/PID/cmdline shows and the
short name top shows (prctl PR_SET_NAME). Loaded by the watcher process only,
never on a job's path.
"""

from __future__ import annotations

import os


def name_watcher(user: str) -> None:
    """Show this process as `notifyd watcher (USER)`; without setproctitle, leave the name as it is."""
    # SPT_NOENV: by default setproctitle also takes over the environment's
    # memory for a long title, which blanks /proc/PID/environ (`ps e`, and
    # how the tests tell whose watcher a process is). The -c entry's argv is
    # far longer than the title, so it needs no more room. It is read when
    # the title is set, and taken out again so no child inherits it.
    os.environ["SPT_NOENV"] = "1"
    try:
        from setproctitle import setproctitle

        setproctitle(f"notifyd watcher ({user})")
    except ImportError:
        # The name is cosmetic: a platform where setproctitle's C extension
        # did not build (or an install without it) keeps the python -c name
        # and loses nothing else, so no error and no log line.
        pass
    finally:
        del os.environ["SPT_NOENV"]
