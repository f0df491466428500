"""Every file and directory notifyd uses, resolved in one place, at call time.

`pingch` resolves its spool file here on every job, so importing this module
costs almost nothing: platformdirs alone takes ~13 ms to import on this machine
and pathlib with re another ~7 ms, so the XDG rules
(https://specifications.freedesktop.org/basedir-spec/) are applied by hand on
strings, and pathlib is only imported when the full `Paths` is asked for.
"""

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

_HOST_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


def _env(env: "Mapping[str, str] | None") -> "Mapping[str, str]":
    return os.environ if env is None else env


def _locations(env: "Mapping[str, str] | None") -> tuple[str, str, str]:
    """(home, config file, state dir) as strings: NOTIFYD_*, then XDG_*, then defaults."""
    e = _env(env)
    home = e.get("HOME") or os.path.expanduser("~")
    state_home = e.get("XDG_STATE_HOME") or os.path.join(home, ".local", "state")
    config_home = e.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    state_dir = e.get("NOTIFYD_STATE_DIR") or os.path.join(state_home, "notifyd")
    config = e.get("NOTIFYD_CONFIG") or os.path.join(config_home, "notifyd", "notifyd.conf")
    return home, config, state_dir


class Paths:
    """Where notifyd keeps its files for one user; see docs/ARCHITECTURE.md."""

    def __init__(self, config_file: "Path", state_dir: "Path", home: "Path") -> None:
        self.config_file = config_file
        self.state_dir = state_dir
        self.home = home

    @property
    def events_dir(self) -> "Path":
        return self.spool_file("").parent

    @property
    def lease_dir(self) -> "Path":
        from pathlib import Path

        return Path(lease_dir_str(str(self.state_dir)))

    @property
    def state_file(self) -> "Path":
        return self.state_dir / "watcher-state.json"

    @property
    def inbox_dir(self) -> "Path":
        return self.state_dir / "inbox"

    @property
    def alive_dir(self) -> "Path":
        return self.alive_file("").parent

    def alive_file(self, host: str) -> "Path":
        from pathlib import Path

        return Path(alive_file_str(str(self.state_dir), host))

    @property
    def journal_dir(self) -> "Path":
        return self.state_dir / "journal"

    @property
    def log_dir(self) -> "Path":
        return self.state_dir / "logs"

    @property
    def drop_dir(self) -> "Path":
        """`notifyd drop`'s requests to the watcher, one file per asking host (watcher/drop.py)."""
        return self.state_dir / "drop"

    @property
    def legacy_file(self) -> "Path":
        """The old bash function's file, read so a lab can switch over without losing a job."""
        return self.home / ".pingchilling"

    def procs_dir(self, configured: str) -> "Path":
        """Where node snapshots live: `[procs] dir`, else <state dir>/procs (private)."""
        from pathlib import Path

        return Path(configured) if configured else self.state_dir / "procs"

    def private_dir(self, path: "Path") -> "Path":
        """Create one of notifyd's directories (0700 from the state dir down)."""
        ensure_private_dir(path, self.state_dir)
        return path

    def wake_fifo(self, host: str) -> "Path":
        from pathlib import Path

        return Path(wake_fifo_str(str(self.state_dir), host))

    def spool_file(self, host: str) -> "Path":
        from pathlib import Path

        return Path(spool_file_str(str(self.state_dir), host))

    def inbox_file(self, host: str) -> "Path":
        return self.inbox_dir / spool_name(host)

    def log_file(self, host: str) -> "Path":
        # One log per host: two hosts appending to one file over NFS corrupt it.
        return self.log_dir / f"{host}.log"


def resolve(env: "Mapping[str, str] | None" = None) -> Paths:
    from pathlib import Path

    home, config, state_dir = _locations(env)
    return Paths(config_file=Path(config), state_dir=Path(state_dir), home=Path(home))


def state_dir_str(env: "Mapping[str, str] | None" = None) -> str:
    """The state dir without pathlib, for pingch's hot path."""
    return _locations(env)[2]


def wake_fifo_str(state_dir: str, host: str) -> str:
    """The FIFO a watcher on `host` listens on, so pingch there can wake it (notifyd/spool/wake.py)."""
    return os.path.join(state_dir, "wake", f"{host}.fifo")


def spool_name(host: str) -> str:
    """A host's file name in events/ and inbox/ (one file per host: NFS appends do not mix)."""
    return f"{host}.jsonl"


# The per-host and per-job paths as strings, for pingch's hot path; the
# Paths properties above are built on the same names.
def spool_file_str(state_dir: str, host: str) -> str:
    return os.path.join(state_dir, "events", spool_name(host))


def alive_file_str(state_dir: str, host: str) -> str:
    """pingch's liveness mark for `host` (its mtime is the host's last sign of life)."""
    return os.path.join(state_dir, "alive", host)


def lease_dir_str(state_dir: str) -> str:
    return os.path.join(state_dir, "lease")


def job_logs_dir_str(state_dir: str) -> str:
    return os.path.join(state_dir, "joblogs")


def job_log_str(state_dir: str, job: str) -> str:
    """Where a `pingch -d` job's output goes unless -o names a file."""
    return os.path.join(job_logs_dir_str(state_dir), f"{job}.log")


def host_name(env: "Mapping[str, str] | None" = None) -> str:
    """This host's name in file names: NOTIFYD_HOST, else the short hostname.

    Only [A-Za-z0-9._-] survive, so a name can never climb out of events/.
    """
    raw = _env(env).get("NOTIFYD_HOST") or os.uname().nodename.split(".")[0]
    name = "".join(c if c in _HOST_CHARS else "_" for c in raw).lstrip(".")
    return name or "localhost"


def user_name(env: "Mapping[str, str] | None" = None) -> str:
    e = _env(env)
    name = e.get("USER") or e.get("LOGNAME")
    if name:
        return name
    import pwd  # builtin and cheap; only reached when USER is unset (cron)

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid the name service cannot resolve (LDAP down, containers)
        return str(os.getuid())


def ensure_private_dir(path: str | os.PathLike[str], top: str | os.PathLike[str]) -> None:
    """Create `path` as 0700, and every missing directory from `top` down to it.

    Labmates can read a careless home, so notifyd's own directories are 0700;
    parents above `top` (~/.local/state) get the default mode, as mkdir -p
    gives (os.makedirs applies `mode` to the last directory only).
    """
    path, top = os.fspath(path), os.fspath(top)
    if os.path.isdir(path):
        return
    if path != top:
        ensure_private_dir(os.path.dirname(path), top)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
