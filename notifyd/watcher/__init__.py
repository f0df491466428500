"""The watcher: one per user, on any host (see docs/ARCHITECTURE.md).

Kept empty of imports: pingch loads this package for `launch` and `lease`
on every job. `run_in_background` is resolved on demand because a watcher
spawned by an earlier notifyd runs `from notifyd.watcher import
run_in_background` after an upgrade.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def __getattr__(name: str) -> "Callable[[], int]":
    if name == "run_in_background":
        from notifyd.watcher.loop import run_in_background

        return run_in_background
    raise AttributeError(f"module 'notifyd.watcher' has no attribute {name!r}")
