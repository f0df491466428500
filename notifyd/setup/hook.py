"""The login hook: one `source .../notifyd.bash` in ~/.bashrc starts the watcher at login.

    ready = prepare(home / ".bashrc", config_dir)  # finds (or copies) the hook file
    if not ready.present_at:
        add(ready)                                   # appends ready.lines to ~/.bashrc

Nothing here prints or asks: `notifyd init` does, between the two calls.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from notifyd import fsutil, paths
from notifyd.errors import NotifydError

HOOK_MARKER = "# notifyd: start the job watcher at login (added by `notifyd init`)"


def script(name: str) -> str:
    """This installation's `notifyd` or `pingch` console script, as an absolute path."""
    argv0 = os.path.abspath(sys.argv[0])
    candidates = [os.path.join(os.path.dirname(argv0), name)] if os.path.basename(argv0) == "notifyd" else []
    candidates.append(os.path.join(os.path.dirname(sys.executable), name))
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which(name) or name


def on_path(script: str, name: str) -> bool:
    """True when `name` on PATH is this `script`."""
    found = shutil.which(name)
    try:
        return found is not None and os.path.samefile(found, script)
    except OSError:
        return False


def shown(script: str, name: str) -> str:
    """How to type `name` here: the bare name when it is this one on PATH, else the full path."""
    return name if on_path(script, name) else shlex.quote(script)


def typed(name: str) -> str:
    """How to type this installation's `notifyd` or `pingch` here (see shown())."""
    return shown(script(name), name)


def hook_file(config_dir: Path) -> tuple[Path, bool]:
    """The hook to source from ~/.bashrc, and whether it was (re)written now.

    In a source checkout (an editable install) that is the checkout's
    hooks/notifyd.bash, so a `git pull` updates it. An installed wheel ships
    a copy as package data (notifyd/hooks/), inside a site-packages path that
    changes with the Python version, so it is copied to the config directory.
    """
    checkout = Path(__file__).resolve().parents[2] / "hooks" / "notifyd.bash"  # notifyd/setup/hook.py
    if checkout.is_file():
        return checkout, False
    return copy_packaged("hooks/notifyd.bash", config_dir / "notifyd.bash",
                         "this notifyd installation has no login hook (notifyd/hooks/notifyd.bash); "
                         "reinstall notifyd, or run notifyd init --no-hook")


def copy_packaged(resource: str, dest: Path, missing: str) -> tuple[Path, bool]:
    """Copy a file the package ships to `dest` unless it is already there, the same.

    Returns `dest` and whether it was (re)written now; `missing` is the error
    for an installation without the file.
    """
    from importlib.resources import files

    packaged = files("notifyd").joinpath(resource)
    if not packaged.is_file():
        raise NotifydError(missing)
    text = packaged.read_bytes()
    try:
        if dest.read_bytes() == text:
            return dest, False
    except FileNotFoundError:
        pass
    paths.ensure_private_dir(dest.parent, dest.parent)
    fsutil.atomic_write(dest, text, dest.parent / f".{dest.name}.{os.getpid()}")
    return dest, True


def existing_hook(bashrc_text: str) -> int:
    """The 1-based line of ~/.bashrc that already holds a notifyd hook, or 0."""
    for number, line in enumerate(bashrc_text.splitlines(), 1):
        stripped = line.strip()
        if stripped == HOOK_MARKER:
            return number
        words = stripped.split()
        if len(words) >= 2 and words[0] in ("source", ".") and words[1].endswith("notifyd.bash"):
            return number
    return 0


@dataclass(frozen=True)
class Ready:
    """The hook, ready to be added to ~/.bashrc (or found there already)."""

    bashrc: Path
    hook_file: Path
    refreshed: bool  # hook_file was (re)written just now
    present_at: int  # the line of bashrc that already holds a hook, or 0
    lines: tuple[str, ...]  # what add() appends, HOOK_MARKER first


def prepare(bashrc: Path, config_dir: Path) -> Ready:
    """Find or copy the hook file (hook_file()) and say what adding it to `bashrc` takes."""
    try:
        text = bashrc.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        text = ""
    found, refreshed = hook_file(config_dir)
    notifyd = script("notifyd")
    lines = [HOOK_MARKER]
    if not on_path(notifyd, "notifyd"):
        # The hook finds notifyd through this, and puts its directory on PATH for pingch.
        lines.append(f"NOTIFYD_BIN={shlex.quote(notifyd)}")
    lines.append(f"source {shlex.quote(str(found))}")
    return Ready(bashrc, found, refreshed, existing_hook(text), tuple(lines))


def add(ready: Ready) -> None:
    """Append the hook's lines to ~/.bashrc, on a line of their own."""
    try:
        text = ready.bashrc.read_bytes()
    except FileNotFoundError:
        text = b""
    with ready.bashrc.open("a", encoding="utf-8") as f:
        f.write(("\n" if text and not text.endswith(b"\n") else "") + "\n".join(ready.lines) + "\n")
