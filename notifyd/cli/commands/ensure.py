"""Start a watcher in the background unless one already runs for you on any host.

Returns at once and prints nothing on success; meant for ~/.bashrc and cron.
"""

from __future__ import annotations

from notifyd.cli.commands.common import config, context
from notifyd.watcher import launch


def command() -> int:
    paths, host = context()
    config(paths)  # a broken or unsafe config is reported here, not lost in a background log
    launch.start_watcher(str(paths.state_dir), host, careful=True)
    return 0
