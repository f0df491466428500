"""The user's crontab block: a snapshot every minute, the watcher kept alive after reboots.

Only the lines between the markers are ever touched, through the real
`crontab` command; `remove` gives back the crontab exactly as it was.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

from notifyd.errors import NotifydError

BEGIN = "# >>> notifyd: managed by `notifyd cron install` / `notifyd cron remove` >>>"
END = "# <<< notifyd <<<"
# cron's environment is nearly empty: these, when set at install time, are
# written into the lines so cron's runs find the same config and state.
CARRIED_ENV = ("NOTIFYD_CONFIG", "NOTIFYD_STATE_DIR", "NOTIFYD_HOST", "XDG_CONFIG_HOME",
               "XDG_STATE_HOME")
ENSURE_EVERY_MINUTES = 5


def _crontab() -> str:
    exe = shutil.which("crontab")
    if exe is None:
        raise NotifydError(
            "the crontab command is not installed on this host; ask its owner to install cron "
            "(Debian/Ubuntu: sudo apt install cron), or run `notifyd snapshot` another way"
        )
    return exe


def read() -> str:
    """The current crontab, '' when the user has none."""
    p = subprocess.run([_crontab(), "-l"], capture_output=True, text=True, check=False)
    if p.returncode == 0:
        return p.stdout
    if "no crontab" in p.stderr.lower():
        return ""
    raise NotifydError(f"crontab -l refused: {p.stderr.strip()}; cron may not allow your user "
                       "(see /etc/cron.allow and /etc/cron.deny, or ask the node owner)")


def write(text: str) -> None:
    exe = _crontab()
    args = [exe, "-r"] if not text else [exe, "-"]
    p = subprocess.run(args, input=text, capture_output=True, text=True, check=False)
    if p.returncode != 0 and not (not text and "no crontab" in p.stderr.lower()):
        raise NotifydError(f"crontab refused the new table: {p.stderr.strip()}; your crontab "
                           "was left as it was")


def _cron_quote(value: str) -> str:
    """Shell-quote for a crontab line, where an unescaped % means newline (crontab(5))."""
    if "\n" in value or "\r" in value:
        raise NotifydError(f"cannot put {value!r} in a crontab line: it holds a line break")
    return shlex.quote(value).replace("%", "\\%")


def block(snapshot: bool = True) -> str:
    """The managed lines, with absolute paths (cron's PATH is /usr/bin:/bin).

    `cd /` first: cron starts in HOME, and `python -m` puts the working
    directory first on sys.path, so a ~/typer.py would shadow a module.
    """
    env = "".join(f"{k}={_cron_quote(os.environ[k])} " for k in CARRIED_ENV if os.environ.get(k))
    cmd = f"cd / && {env}{_cron_quote(sys.executable)} -m notifyd"
    lines = [BEGIN]
    if snapshot:
        lines.append(f"* * * * * {cmd} snapshot >/dev/null 2>&1")
    lines.append(f"*/{ENSURE_EVERY_MINUTES} * * * * {cmd} ensure >/dev/null 2>&1")
    lines.append(END)
    return "\n".join(lines) + "\n"


def _spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every managed block; a hand-copied second one counts too."""
    spans = []
    pos = 0
    while (start := text.find(BEGIN + "\n", pos)) >= 0:
        end = text.find(END + "\n", start)
        if end < 0:
            raise NotifydError("your crontab has notifyd's start marker but not its end marker; "
                               "fix it by hand with: crontab -e")
        pos = end + len(END) + 1
        spans.append((start, pos))
    return spans


def without_block(text: str) -> str:
    """`text` with every managed block taken out, every other byte untouched."""
    for start, end in reversed(_spans(text)):
        text = text[:start] + text[end:]
    return text


def current_block(text: str) -> str:
    return "".join(text[start:end] for start, end in _spans(text))


def install(snapshot: bool = True) -> bool:
    """Put the block in (replacing an older one). True when the crontab changed."""
    text = read()
    base = without_block(text)
    if base and not base.endswith("\n"):
        base += "\n"  # crontab(1) needs whole lines; only reached for a hand-made table
    new = base + block(snapshot)
    if new == text:
        return False
    write(new)
    return True


def remove() -> bool:
    """Take the block out. True when the crontab changed."""
    text = read()
    new = without_block(text)
    if new == text:
        return False
    write(new)
    return True
