"""Set notifyd up in one command: the URL, a test message, the login hook, cron, the watcher.

    $ notifyd init --url https://discord.com/api/webhooks/ID/TOKEN --yes
    config: wrote /home/ana/.config/notifyd/notifyd.conf (0600)
    test message:
    ok      discord://ID/****
    hook: added to /home/ana/.bashrc: source /home/ana/notifyd/hooks/notifyd.bash
    cron: installed notifyd's block in your crontab (notifyd cron show)
    watcher: started (pid 81234)
    try it:  pingch -t hello sleep 5

Without --yes it asks for each step. Running it again with the same answers
changes nothing and says so.
"""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import typer

from notifyd import config as config_mod
from notifyd import fsutil, paths
from notifyd.cli.commands import test
from notifyd.cli.commands.common import context
from notifyd.errors import ExitStatus, NotifydError
from notifyd.notify import apprise_urls
from notifyd.notify import targets as sender
from notifyd.setup import cron
from notifyd.watcher import launch

HOOK_MARKER = "# notifyd: start the job watcher at login (added by `notifyd init`)"
NEW_CONFIG_HEADER = "# notifyd: written by `notifyd init`; every key and its default: notifyd.conf.example\n"
_COMMENT = ("#", ";")  # configparser's full-line comment prefixes


def command(
    url: list[str] = typer.Option(None, "--url", metavar="URL", help="An Apprise URL (or TAG=URL); repeat "
                                  "for several. They replace the config's URLs; its other keys stay."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Ask nothing: every question takes its default "
                             "(keep the configured URLs, add the hook, install cron)."),
    hook: bool = typer.Option(True, "--hook/--no-hook", help="Offer the login hook in ~/.bashrc."),
    with_cron: bool = typer.Option(True, "--cron/--no-cron", help="Offer notifyd's crontab block."),
) -> int:
    p, host = context()
    interactive = not yes
    urls = _choose_urls(list(url or []), _configured_urls(p.config_file), interactive)
    changed = _write_config(p.config_file, urls)

    typer.echo("test message:")
    delivered = test.command() == 0  # exactly what `notifyd test` does, to the URLs just written

    # A hook or crontab that cannot be set up is reported; the rest of the setup still holds.
    failed_steps = 0
    if hook:
        try:
            changed |= _hook_step(p, interactive)
        except NotifydError as exc:
            failed_steps += 1
            typer.echo(f"hook: not added: {exc.message}", err=True)
    try:
        changed |= _cron_step(interactive, with_cron)
    except NotifydError as exc:
        failed_steps += 1
        typer.echo(f"cron: not installed: {exc.message}; later: notifyd cron install", err=True)

    pid = launch.start_watcher(str(p.state_dir), host, careful=True)
    typer.echo(f"watcher: started (pid {pid})" if pid else "watcher: already running (or just started)")
    if not changed:
        typer.echo("nothing to change: notifyd was already set up this way")
    if not delivered:
        typer.echo("the test message did not arrive everywhere (above); the config is written: "
                   "fix what the test said, then run notifyd test", err=True)
    typer.echo(f"try it:  {_shown(_script('pingch'), 'pingch')} -t hello sleep 5")
    if not delivered:
        return int(ExitStatus.DELIVERY)
    return int(ExitStatus.ERROR) if failed_steps else 0


# -- the URLs -------------------------------------------------------------------------------------


def _choose_urls(given: list[str], configured: list[str], interactive: bool) -> list[str]:
    """The URLs to write: --url, else asked for, else (with --yes) the configured ones."""
    if given:
        for line in given:
            problem = _url_problem(line)
            if problem:
                raise NotifydError(f"--url {problem}; nothing was written", ExitStatus.CONFIG)
        return given
    if not interactive:
        if configured:
            return configured
        raise NotifydError("--yes needs --url URL: no URL is configured yet", ExitStatus.USAGE)
    typer.echo("A Discord webhook URL comes from your server: Server Settings → Integrations → Webhooks →\n"
               "New Webhook (pick the channel) → Copy Webhook URL. Other services: notifyd.conf.example.")
    keep = f" (empty: keep the {len(configured)} configured)" if configured else ""
    while True:
        answer = typer.prompt(f"notification URL{keep}", default="" if configured else None,
                              show_default=False).strip()
        if not answer and configured:
            return configured
        problem = _url_problem(answer)
        if not problem:
            return [answer]
        typer.echo(f"{problem}; try again (Ctrl-C to stop)", err=True)


def _url_problem(line: str) -> str:
    """Why Apprise cannot use this URL (named masked: it may hold a token), or ''."""
    _tags, url = sender.split_tags(line)
    masked = sender.mask_url(url)
    # A line break would end the INI value; a leading # or ; would make it a comment.
    if not url or any(c in line for c in "\r\n") or line.lstrip().startswith(_COMMENT):
        return f"{masked} cannot be written as one line of [notify] urls"
    if apprise_urls.instantiate(sender._apprise(), url) is None:
        return (f"{masked} is not a URL Apprise can use; check its scheme and parts against "
                "https://github.com/caronc/apprise/wiki")
    return ""


# -- the config file --------------------------------------------------------------------------------


def _configured_urls(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise NotifydError(f"cannot read {path}: {exc}; check the file is yours", ExitStatus.CONFIG) from None
    parser = config_mod.ini_parser()
    try:
        parser.read_string(text, str(path))
    except configparser.Error as exc:
        first = str(exc).splitlines()[0]
        raise NotifydError(f"{path} is not a valid INI file: {first}; fix it or move it away, then "
                           "run notifyd init again", ExitStatus.CONFIG) from None
    return list(config_mod.parse_urls(parser.get("notify", "urls", fallback="")))


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


def _write_config(config_file: Path, urls: list[str]) -> bool:
    """Write `urls` into the config (0600), backing up a different old one. True if it changed."""
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
            typer.echo(f"config: {path} already holds these URLs; made it private (chmod 600)")
            return True
        typer.echo(f"config: {path} already holds these URLs; unchanged")
        return False
    paths.ensure_private_dir(path.parent, path.parent)
    tmp = path.with_name(f".{path.name}.init-{os.getpid()}")
    try:
        fsutil.write_new(tmp, new)
        # Checked as the watcher will read it before it replaces anything: a
        # kept key that is wrong is reported now, with the real file's name.
        try:
            loaded = config_mod.load(tmp)
        except NotifydError as exc:
            raise NotifydError(exc.message.replace(str(tmp), str(path))
                               + "; nothing was written", exc.status) from None
        if list(loaded.urls[:len(urls)]) != urls:
            raise NotifydError(f"could not put the URLs under [notify] urls in {path}; edit it by hand "
                               "(see notifyd.conf.example)", ExitStatus.CONFIG)
        if old is not None:
            backup = _backup(path, old)
            typer.echo(f"config: saved the previous {path.name} as {backup}")
        os.replace(tmp, path)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    typer.echo(f"config: wrote {path} (0600)")
    return True


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


# -- the login hook -------------------------------------------------------------------------------


def _script(name: str) -> str:
    """This installation's `notifyd` or `pingch` console script, as an absolute path."""
    argv0 = os.path.abspath(sys.argv[0])
    candidates = [os.path.join(os.path.dirname(argv0), name)] if os.path.basename(argv0) == "notifyd" else []
    candidates.append(os.path.join(os.path.dirname(sys.executable), name))
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which(name) or name


def _on_path(script: str, name: str) -> bool:
    found = shutil.which(name)
    try:
        return found is not None and os.path.samefile(found, script)
    except OSError:
        return False


def _shown(script: str, name: str) -> str:
    """How to type `name` here: the bare name when it is this one on PATH, else the full path."""
    return name if _on_path(script, name) else shlex.quote(script)


def _hook_file(config_dir: Path) -> tuple[Path, bool]:
    """The hook to source from ~/.bashrc, and whether it was (re)written now.

    In a source checkout (an editable install) that is the checkout's
    hooks/notifyd.bash, so a `git pull` updates it. An installed wheel ships
    a copy as package data (notifyd/hooks/), inside a site-packages path that
    changes with the Python version, so it is copied to the config directory.
    """
    checkout = Path(__file__).resolve().parents[3] / "hooks" / "notifyd.bash"
    if checkout.is_file():
        return checkout, False
    from importlib.resources import files

    packaged = files("notifyd").joinpath("hooks/notifyd.bash")
    if not packaged.is_file():
        raise NotifydError("this notifyd installation has no login hook (notifyd/hooks/notifyd.bash); "
                           "reinstall notifyd, or run notifyd init --no-hook")
    text = packaged.read_bytes()
    dest = config_dir / "notifyd.bash"
    try:
        if dest.read_bytes() == text:
            return dest, False
    except FileNotFoundError:
        pass
    paths.ensure_private_dir(config_dir, config_dir)
    fsutil.atomic_write(dest, text, config_dir / f".notifyd.bash.{os.getpid()}")
    return dest, True


def _existing_hook(bashrc_text: str) -> int:
    """The 1-based line of ~/.bashrc that already holds a notifyd hook, or 0."""
    for number, line in enumerate(bashrc_text.splitlines(), 1):
        stripped = line.strip()
        if stripped == HOOK_MARKER:
            return number
        words = stripped.split()
        if len(words) >= 2 and words[0] in ("source", ".") and words[1].endswith("notifyd.bash"):
            return number
    return 0


def _hook_step(p: paths.Paths, interactive: bool) -> bool:
    """Add the hook to ~/.bashrc once. True if anything changed."""
    bashrc = p.home / ".bashrc"
    try:
        text = bashrc.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        text = ""
    hook_file, refreshed = _hook_file(p.config_file.parent)
    if refreshed:
        typer.echo(f"hook: wrote {hook_file}")
    at = _existing_hook(text)
    if at:
        typer.echo(f"hook: already in {bashrc} (line {at}); unchanged")
        return refreshed
    notifyd = _script("notifyd")
    lines = [HOOK_MARKER]
    if not _on_path(notifyd, "notifyd"):
        # The hook finds notifyd through this, and puts its directory on PATH for pingch.
        lines.append(f"NOTIFYD_BIN={shlex.quote(notifyd)}")
    lines.append(f"source {shlex.quote(str(hook_file))}")
    if interactive and not typer.confirm(
            f"Add the login hook to {bashrc}? It starts the watcher when you log in "
            "(silent, ~1 ms)", default=True):
        typer.echo(f"hook: skipped; to add it later, append to {bashrc}:\n" + "\n".join(lines[1:]))
        return refreshed
    addition = ("\n" if text and not text.endswith("\n") else "") + "\n".join(lines) + "\n"
    with bashrc.open("a", encoding="utf-8") as f:
        f.write(addition)
    typer.echo(f"hook: added to {bashrc}: source {hook_file}")
    return True


# -- cron -----------------------------------------------------------------------------------------


def _cron_step(interactive: bool, wanted: bool) -> bool:
    """Install notifyd's crontab block, as `notifyd cron install` does. True if it changed."""
    later = "later: notifyd cron install (keeps the watcher alive after reboots, snapshots the node)"
    if not wanted:
        typer.echo(f"cron: skipped (--no-cron); {later}")
        return False
    if shutil.which("crontab") is None:
        typer.echo("cron: this host has no crontab command; ask its owner to install cron "
                   f"(Debian/Ubuntu: sudo apt install cron), then {later}")
        return False
    current = cron.current_block(cron.read())
    # A block installed with --no-snapshot (another node writes this one's snapshots) stays so.
    snapshot = not current or "notifyd snapshot" in current
    if current == cron.block(snapshot):
        typer.echo("cron: notifyd's block is already in your crontab; unchanged")
        return False
    if interactive and not typer.confirm(
            "Install notifyd's crontab block? Every minute a node snapshot (notifyd procs), every "
            f"{cron.ENSURE_EVERY_MINUTES} minutes the watcher kept alive", default=True):
        typer.echo(f"cron: skipped; {later}")
        return False
    cron.install(snapshot=snapshot)
    typer.echo("cron: installed notifyd's block in your crontab (notifyd cron show)")
    return True
