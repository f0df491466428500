"""The config file as `notifyd init` edits it: [notify] urls replaced, every other line kept.

    >>> with_urls("[notify]\\non = failure\\nurls = json://old\\n", ["json://new"])
    '[notify]\\non = failure\\nurls =\\n    json://new\\n'

write_urls() checks the result as the watcher will read it before it
replaces the file, and keeps a different old file as a backup next to it.
Nothing here prints: the verb says what happened.
"""

from __future__ import annotations

import configparser
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from notifyd import config, fsutil, paths
from notifyd.errors import ExitStatus, NotifydError
from notifyd.notify import apprise_urls, targets, url_help
from notifyd.setup import hook

EXAMPLE_NAME = "notifyd.conf.example"
NEW_CONFIG_HEADER = (f"# notifyd: written by `notifyd init`; every key and its default: {EXAMPLE_NAME},\n"
                     "# which init keeps beside this file.\n")
BACKUPS_KEPT = 3  # init's backups of a replaced config: the newest few, not one per run forever
_COMMENT = ("#", ";")  # configparser's full-line comment prefixes


def url_problem(line: str) -> str:
    """Why this line cannot go under [notify] urls (its secret parts masked, notify/url_help.py), or ''."""
    _tags, url = targets.split_tags(line)
    # A line break would end the INI value; a leading # or ; would make it a comment.
    if not url or any(c in line for c in "\r\n") or line.lstrip().startswith(_COMMENT):
        return f"{url_help.mask(url)} cannot be written as one line of [notify] urls"
    if apprise_urls.instantiate(targets.load_apprise(), url) is None:
        return url_help.problem(url)
    return ""


def configured_urls(path: Path) -> list[str]:
    """The [notify] urls of the config file at `path`; none when it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise NotifydError(f"cannot read {path}: {exc}; check the file is yours", ExitStatus.CONFIG) from None
    parser = config.ini_parser()
    try:
        parser.read_string(text, str(path))
    except configparser.Error as exc:
        first = str(exc).splitlines()[0]
        raise NotifydError(f"{path} is not a valid INI file: {first}; fix it or move it away, then "
                           "run notifyd init again", ExitStatus.CONFIG) from None
    return list(config.parse_urls(parser.get("notify", "urls", fallback="")))


def with_urls(text: str, urls: list[str]) -> str:
    """`text` (an INI file) with [notify] urls replaced by `urls`; every other line kept as it was.

    Edited as text, not through configparser.write(), which would drop the
    user's comments. Lines are read as configparser reads them: a value goes
    on over lines indented deeper than its key; comments and blank lines
    inside it do not end it.
    """
    lines = text.splitlines(keepends=True)
    header_at: int | None = None
    span: tuple[int, int] | None = None
    section: str | None = None
    key: str | None = None
    start = last = key_indent = 0
    for i, raw in enumerate([*lines, "[\0end]"]):  # a sentinel section closes the last value
        stripped = raw.strip()
        if not stripped or stripped.startswith(_COMMENT):
            continue
        indent = len(raw) - len(raw.lstrip())
        if key is not None and indent > key_indent:
            last = i
            continue
        if (section, key) == ("notify", "urls") and span is None:
            span = (start, last + 1)
        key = None
        found = configparser.ConfigParser.SECTCRE.match(stripped)
        if found:
            section = found.group("header")
            if section == "notify" and header_at is None:
                header_at = i
            continue
        found = configparser.ConfigParser.OPTCRE.match(stripped)
        if found:
            key, start, last, key_indent = found.group("option").strip(), i, i, indent
    def block(indent: str) -> str:
        return f"{indent}urls =\n" + "".join(f"{indent}    {u}\n" for u in urls)

    if span is not None:
        first = lines[span[0]]
        lines[span[0]:span[1]] = [block(first[:len(first) - len(first.lstrip())])]
    elif header_at is not None:
        lines[header_at] = lines[header_at].rstrip("\r\n") + "\n"
        lines.insert(header_at + 1, block(""))
    else:
        head = NEW_CONFIG_HEADER if not text else ("\n" if text.endswith("\n") else "\n\n")
        lines.append(f"{head}[notify]\n{block('')}")
    return "".join(lines)


@dataclass(frozen=True)
class Written:
    """What write_urls() did."""

    path: Path  # the file itself: a symlink's target
    wrote: bool  # False: it already held these URLs
    made_private: bool = False  # it held them, and was made 0600
    backup: Path | None = None  # where the different old file was kept

    @property
    def changed(self) -> bool:
        return self.wrote or self.made_private


def write_urls(config_file: Path, urls: list[str]) -> Written:
    """Write `urls` into the config (0600), backing up a different old one."""
    # A dotfile manager's symlink stays a symlink: the file it points at is updated.
    path = Path(os.path.realpath(config_file))
    try:
        old: bytes | None = path.read_bytes()
    except FileNotFoundError:
        old = None
    new = with_urls(old.decode("utf-8") if old is not None else "", urls).encode("utf-8")
    if new == old:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
            return Written(path, wrote=False, made_private=True)
        return Written(path, wrote=False)
    paths.ensure_private_dir(path.parent, path.parent)
    tmp = path.with_name(f".{path.name}.init-{os.getpid()}")
    backup = None
    try:
        fsutil.write_new(tmp, new)
        # Checked as the watcher will read it before it replaces anything: a
        # kept key that is wrong is reported now, with the real file's name.
        try:
            loaded = config.load(tmp)
        except NotifydError as exc:
            raise NotifydError(exc.message.replace(str(tmp), str(path))
                               + "; nothing was written", exc.status) from None
        if list(loaded.urls[:len(urls)]) != urls:
            raise NotifydError(f"could not put the URLs under [notify] urls in {path}; edit it by hand "
                               "(see notifyd.conf.example)", ExitStatus.CONFIG)
        if old is not None:
            backup = _backup(path, old)
        os.replace(tmp, path)
        if backup is not None:
            _prune_backups(path)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    return Written(path, wrote=True, backup=backup)


def write_example(config_dir: Path) -> tuple[Path, bool]:
    """Put the packaged notifyd.conf.example beside the config: the file its header names.

    The package's copy sits in a site-packages path that changes with the
    Python version, so the config names a copy beside it, refreshed by every
    init. Returns where it is and whether it was (re)written now.
    """
    return hook.copy_packaged(EXAMPLE_NAME, config_dir / EXAMPLE_NAME,
                              f"this notifyd installation has no {EXAMPLE_NAME}; reinstall notifyd")


_BACKUP = re.compile(r"\.bak-(\d{8}-\d{6})(?:-(\d+))?")


def _backups(path: Path) -> list[Path]:
    """init's backups of `path`, oldest first (names it chose: a user's own .bak files are not these)."""
    found = []
    for other in path.parent.iterdir():
        match = other.name.startswith(path.name) and _BACKUP.fullmatch(other.name[len(path.name):])
        if match:
            found.append(((match[1], int(match[2] or 1)), other))
    return [p for _key, p in sorted(found)]


def _prune_backups(path: Path) -> None:
    for old in _backups(path)[:-BACKUPS_KEPT]:
        try:
            old.unlink()
        except OSError:
            pass  # one that cannot be removed is only clutter; the new config is written


def _backup(path: Path, data: bytes) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 100):
        backup = path.with_name(f"{path.name}.bak-{stamp}" + (f"-{n}" if n > 1 else ""))
        try:
            fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            continue  # two runs within one second
        try:
            fsutil.write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return backup
    raise NotifydError(f"cannot find a free backup name next to {path}; tidy up its .bak- files")
