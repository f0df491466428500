"""Every file and directory notifyd uses, resolved in one place, at call time.

`pingch` resolves its spool file here on every job, so importing this module
costs almost nothing: platformdirs alone takes ~13 ms to import on this machine
and pathlib with re another ~7 ms, so the XDG rules
(https://specifications.freedesktop.org/basedir-spec/) are applied by hand on
strings, and pathlib is only imported when the full `Paths` is asked for.
platformdirs is the reference all the same: the `notifyd` command and the
watcher resolve their directories through it (notifyd/dirs.py), and
tests/test_dirs.py holds the two to the same answer for every setting of the
variables the README documents ("Where notifyd keeps its files"). The rules:

* `NOTIFYD_STATE_DIR` / `NOTIFYD_CONFIG`, else `$XDG_STATE_HOME/notifyd` /
  `$XDG_CONFIG_HOME/notifyd/notifyd.conf`, else `~/.local/state/notifyd` /
  `~/.config/notifyd/notifyd.conf`;
* a variable counts only when it holds an absolute path: empty or relative is
  as if unset. The XDG spec says so for XDG_*, and platformdirs (>= 4.11.8)
  does it; notifyd's own two follow the same rule because pingch, the watcher
  it starts and the `notifyd` command run in different working directories,
  where one relative path would name three places;
* `~` is `$HOME` when that is absolute, else the password database's home
  (what platformdirs and os.path.expanduser do); with neither, NoHome.
"""

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

_HOST_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


class NoHome(Exception):
    """Neither $HOME nor the password database gives an absolute home directory."""


def _env(env: "Mapping[str, str] | None") -> "Mapping[str, str]":
    return os.environ if env is None else env


def absolute(value: "str | None") -> str:
    """`value` if it is an absolute path, else "" (empty and relative values are ignored)."""
    return value if value and value.startswith("/") else ""


def home_str(env: "Mapping[str, str] | None" = None) -> str:
    """The user's home: an absolute $HOME, else the password database's (NoHome without either)."""
    home = absolute(_env(env).get("HOME"))
    if not home:
        import pwd  # builtin and cheap; only reached without an absolute HOME (env -i, a stripped service)

        try:
            home = absolute(pwd.getpwuid(os.getuid()).pw_dir)
        except KeyError:  # a uid the name service cannot resolve (LDAP down, containers)
            home = ""
    if not home:
        raise NoHome(f"cannot tell your home directory: HOME is not an absolute path and the "
                     f"password database has none for uid {os.getuid()}; set HOME")
    # As os.path.expanduser does: "/home/ana/" and "/home/ana" give the same paths.
    return home.rstrip("/") or "/"


def config_file_str(env: "Mapping[str, str] | None" = None) -> str:
    e = _env(env)
    overridden = overridden_config(e)
    if overridden:
        return overridden
    config_home = absolute(e.get("XDG_CONFIG_HOME")) or os.path.join(home_str(e), ".config")
    return os.path.join(config_home, "notifyd", "notifyd.conf")


def state_dir_str(env: "Mapping[str, str] | None" = None) -> str:
    """The state dir without pathlib, for pingch's hot path (the home is only asked for if needed)."""
    e = _env(env)
    overridden = overridden_state_dir(e)
    if overridden:
        return overridden
    state_home = absolute(e.get("XDG_STATE_HOME")) or os.path.join(home_str(e), ".local", "state")
    return os.path.join(state_home, "notifyd")


# notifyd's own overrides, read by both resolvers (this one and notifyd/dirs.py).
def overridden_state_dir(env: "Mapping[str, str]") -> str:
    return absolute(env.get("NOTIFYD_STATE_DIR"))


def overridden_config(env: "Mapping[str, str]") -> str:
    return absolute(env.get("NOTIFYD_CONFIG"))


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

    def private_dir(self, path: "Path", *, in_place: bool = False) -> "Path":
        """Create one of notifyd's directories (0700 from the state dir down), never the home.

        A watcher whose home was deleted while it started must not bring it
        back (it would heartbeat there for good): FileNotFoundError instead.
        `in_place`: the state dir must be there already (a watcher that holds
        its lease made it; deleted since, it stays deleted).
        """
        ensure_private_dir(path, self.state_dir, self.home, make_top=not in_place)
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
    """The full Paths by this module's rules, for an explicit environment (tests).

    The `notifyd` command and the watcher use notifyd/dirs.py's resolve(),
    which asks platformdirs and gives the same answer.
    """
    from pathlib import Path

    return Paths(config_file=Path(config_file_str(env)), state_dir=Path(state_dir_str(env)),
                 home=Path(home_str(env)))


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


def ensure_private_dir(path: str | os.PathLike[str], top: str | os.PathLike[str],
                       home: str | os.PathLike[str] = "", *, make_top: bool = True) -> None:
    """Create `path` as 0700, and every missing directory from `top` down to it.

    Labmates can read a careless home, so notifyd's own directories are 0700;
    parents above `top` (~/.local/state) get the default mode, as mkdir -p
    gives (os.makedirs applies `mode` to the last directory only). With
    `home`, that directory itself is never created: a home deleted (or not
    mounted yet) stays missing, and FileNotFoundError says so. Without
    `make_top`, `top` itself is never created either.
    """
    path, top = os.fspath(path), os.fspath(top)
    if os.path.isdir(path):
        return
    if path != top:
        ensure_private_dir(os.path.dirname(path), top, home, make_top=make_top)
    elif not make_top:
        raise FileNotFoundError(2, "the directory is gone", path)  # 2: ENOENT
    else:
        _make_parents(os.path.dirname(path), os.fspath(home).rstrip("/"))
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass


def _make_parents(directory: str, home: str) -> None:
    """mkdir -p `directory`, but never `home` (when `directory` is in it)."""
    if not home or not (directory == home or directory.startswith(home + "/")):
        os.makedirs(directory, exist_ok=True)
        return
    if os.path.isdir(directory):
        return
    if directory == home:
        raise FileNotFoundError(2, "the home directory does not exist", home)  # 2: ENOENT
    _make_parents(os.path.dirname(directory), home)
    try:
        os.mkdir(directory)
    except FileExistsError:
        pass
