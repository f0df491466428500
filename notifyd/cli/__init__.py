"""The typer front: `notifyd VERB` (see docs/ARCHITECTURE.md).

Kept empty of imports; `main` is resolved on demand because the console
script installed by pip (and `python -m notifyd`) calls `notifyd.cli:main`.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def __getattr__(name: str) -> Callable[..., None]:
    if name == "main":
        from notifyd.cli.app import main

        return main
    raise AttributeError(f"module 'notifyd.cli' has no attribute {name!r}")
