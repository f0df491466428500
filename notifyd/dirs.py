"""The `notifyd` command's and the watcher's directories, through platformdirs.

platformdirs is the reference for where a user's config and state live
(the XDG base directory rules, honoured as its maintainers read them).
pingch cannot afford to import it on every job (notifyd/paths.py says why)
and applies the same rules by hand; tests/test_dirs.py proves the two agree,
so a pingch job and the watcher it starts always use the same spool.
"""

from __future__ import annotations

import os
from pathlib import Path

from notifyd import paths
from notifyd.errors import NotifydError

APP = "notifyd"


def resolve() -> paths.Paths:
    """Every path for this process's environment; NotifydError if it has no home directory."""
    # Imported here: only the command and the watcher pay for it, once.
    from platformdirs.unix import Unix

    # The Unix (XDG) layout on every platform, not platformdirs' choice for
    # this one: the state dir is shared by every host of the home, and a Mac
    # that mounts it must find the Linux hosts' spool, not ~/Library.
    dirs = Unix(appname=APP, appauthor=False, ensure_exists=False)
    try:
        home = paths.home_str()
        state_dir = paths.overridden_state_dir(os.environ) or dirs.user_state_dir
        config = (paths.overridden_config(os.environ)
                  or os.path.join(dirs.user_config_dir, "notifyd.conf"))
    except (paths.NoHome, RuntimeError) as exc:  # RuntimeError: platformdirs' "no home"
        raise NotifydError(str(exc) if isinstance(exc, paths.NoHome) else
                           f"cannot tell your home directory ({exc})") from exc
    return paths.Paths(config_file=Path(config), state_dir=Path(state_dir), home=Path(home))
