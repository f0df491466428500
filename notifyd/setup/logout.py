"""Will this host kill the user's processes at logout? (systemd-logind's KillUserProcesses)

With KillUserProcesses=yes, logind kills every process of a login session
when it ends, setsid or not (systemd issue #2975): the watcher and every
`pingch … &` job started from that session die with it. The default on
Debian and Ubuntu is "no".
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping


def _settings(files: list[str]) -> dict[str, str]:
    """[Login] keys from logind.conf and its drop-ins; later files win."""
    values: dict[str, str] = {}
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                section = ""
                for raw in f:
                    line = raw.strip()
                    if line.startswith("[") and line.endswith("]"):
                        section = line[1:-1]
                    elif section == "Login" and "=" in line and not line.startswith(("#", ";")):
                        key, _, value = line.partition("=")
                        values[key.strip()] = value.strip()
        except OSError:
            continue
    return values


def config_files(env: Mapping[str, str]) -> list[str]:
    if env.get("NOTIFYD_LOGIND_CONF"):
        return [env["NOTIFYD_LOGIND_CONF"]]
    return ["/etc/systemd/logind.conf", *sorted(glob.glob("/etc/systemd/logind.conf.d/*.conf"))]


def warning(user: str, env: Mapping[str, str] | None = None) -> str | None:
    """A sentence for `notifyd status` when logging out here kills the user's processes."""
    env = os.environ if env is None else env
    values = _settings(config_files(env))
    if values.get("KillUserProcesses", "no").lower() not in ("yes", "true", "1", "on"):
        return None
    if user in values.get("KillExcludeUsers", "root").split():
        return None
    linger_dir = env.get("NOTIFYD_LINGER_DIR") or "/var/lib/systemd/linger"
    lingering = os.path.exists(os.path.join(linger_dir, user))
    return (
        "this host's systemd-logind has KillUserProcesses=yes: logging out kills the watcher and "
        "your `pingch … &` jobs started from that session"
        + ("" if lingering else " (and lingering is off for you)")
        + ". Run long jobs as `systemd-run --user --scope pingch …` with lingering on "
        "(`loginctl enable-linger`, may need the node owner), and `notifyd cron install` so cron "
        "restarts the watcher within 5 minutes"
    )
