"""The `notifyd` command's and the watcher's directories, through platformdirs.

platformdirs is the reference for where a user's config and state live
(the XDG base directory rules, honoured as its maintainers read them).
pingch cannot afford to import it on every job (notifyd/paths.py says why)
and applies the same rules by hand; tests/test_dirs.py proves the two agree,
so a pingch job and the watcher it starts always use the same spool.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
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
    _say_ignored(os.environ)
    return paths.Paths(config_file=Path(config), state_dir=Path(state_dir), home=Path(home))


def _say_ignored(env: Mapping[str, str]) -> None:
    """Say on stderr which of notifyd's own variables is set but ignored, for not being absolute.

    The XDG spec asks to ignore a relative XDG_* quietly; NOTIFYD_CONFIG and
    NOTIFYD_STATE_DIR are the user's explicit wish, and quietly reading
    another config than the one they named would be a trap. (The watcher's
    stderr is its log.)
    """
    for name in ("NOTIFYD_CONFIG", "NOTIFYD_STATE_DIR"):
        value = env.get(name, "")
        if value and not paths.absolute(value):
            print(f"notifyd: {name}={value!r} is ignored: it is not an absolute path, and pingch, "
                  f"the watcher and notifyd run in different directories; give an absolute one",
                  file=sys.stderr)
