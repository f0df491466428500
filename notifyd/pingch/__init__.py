"""The job wrapper: stdlib only, on every job's path (see docs/ARCHITECTURE.md).

Kept empty of imports: pingch loads this package on every job. `main` is
resolved on demand because a `pingch -d` started by an earlier notifyd runs
`from notifyd.pingch import main` after an upgrade.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def __getattr__(name: str) -> "Callable[..., int]":
    if name == "main":
        from notifyd.pingch.entry import main

        return main
    raise AttributeError(f"module 'notifyd.pingch' has no attribute {name!r}")
