"""Set notifyd up in one command: the URL, a test message, the login hook, cron, the watcher.

    $ notifyd init --url https://discord.com/api/webhooks/ID/TOKEN --yes
    config: wrote /home/ana/.config/notifyd/notifyd.conf (0600)
    test message:
    ok      discord://ID/****
    hook: added to /home/ana/.bashrc: source /home/ana/notifyd/hooks/notifyd.bash
    cron: installed notifyd's block in your crontab (notifyd cron show)
    watcher: started now: pid 81234 on node5
    try it:  pingch -t hello sleep 5

Without --yes it asks for each step. Running it again with the same answers
changes nothing and says so.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from notifyd import paths
from notifyd.cli.commands import ensure, test
from notifyd.cli.commands.common import context
from notifyd.errors import ExitStatus, NotifydError
from notifyd.setup import configfile, cron, hook


def command(
    url: list[str] = typer.Option(None, "--url", metavar="URL", help="An Apprise URL (or TAG=URL); repeat "
                                  "for several. They replace the config's URLs; its other keys stay."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Ask nothing: every question takes its default "
                             "(keep the configured URLs, add the hook, install cron)."),
    with_hook: bool = typer.Option(True, "--hook/--no-hook", help="Offer the login hook in ~/.bashrc."),
    with_cron: bool = typer.Option(True, "--cron/--no-cron", help="Offer notifyd's crontab block."),
) -> int:
    p, host = context()
    interactive = not yes
    urls = _choose_urls(list(url or []), configfile.configured_urls(p.config_file), interactive)
    changed = _config_step(p.config_file, urls)

    typer.echo("test message:")
    # Exactly `notifyd test`, to the URLs just written: its lines and its status
    # are this step's. Called, not copied, so the two cannot drift apart.
    delivered = test.command() == 0

    # A hook or crontab that cannot be set up is reported; the rest of the setup still holds.
    failed_steps = 0
    if with_hook:
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

    try:
        typer.echo(ensure.start_attended(p, host))
    except NotifydError as exc:
        failed_steps += 1
        typer.echo(f"watcher: not started: {exc.message}", err=True)
    if not changed:
        typer.echo("nothing to change: notifyd was already set up this way")
    if not delivered:
        typer.echo("the test message did not arrive everywhere (above); the config is written: "
                   "fix what the test said, then run notifyd test", err=True)
    typer.echo(f"try it:  {hook.typed('pingch')} -t hello sleep 5")
    if not delivered:
        return int(ExitStatus.DELIVERY)
    return int(ExitStatus.ERROR) if failed_steps else 0


# -- the URLs -------------------------------------------------------------------------------------


def _choose_urls(given: list[str], configured: list[str], interactive: bool) -> list[str]:
    """The URLs to write: --url, else asked for, else (with --yes) the configured ones."""
    if given:
        for i, line in enumerate(given, 1):
            problem = configfile.url_problem(line)
            which = f"--url #{i} of {len(given)}:" if len(given) > 1 else "--url"
            if problem:
                raise NotifydError(f"{which} {problem}; nothing was written", ExitStatus.CONFIG)
        return given
    if not interactive:
        if configured:
            return configured
        raise NotifydError("--yes needs --url URL: no URL is configured yet", ExitStatus.USAGE)
    typer.echo("A Discord webhook URL comes from your server: Server Settings → Integrations → Webhooks →\n"
               "New Webhook (pick the channel) → Copy Webhook URL. Other services: README's Backends,\n"
               f"or {configfile.EXAMPLE_NAME}, which init puts beside your config.\n"
               "In a shared channel, add ?ping=@YOUR_USER_ID so that your messages mention you\n"
               "(your id: User Settings → Advanced → Developer Mode, right-click your name).")
    keep = f" (empty: keep the {len(configured)} configured)" if configured else ""
    while True:
        answer = typer.prompt(f"notification URL{keep}", default="" if configured else None,
                              show_default=False).strip()
        if not answer and configured:
            return configured
        problem = configfile.url_problem(answer)
        if not problem:
            return [answer]
        typer.echo(f"{problem}; try again (Ctrl-C to stop)", err=True)


# -- the config file --------------------------------------------------------------------------------


def _config_step(config_file: Path, urls: list[str]) -> bool:
    """Write the URLs into the config. True if it changed."""
    done = configfile.write_urls(config_file, urls)
    if not done.wrote:
        typer.echo(f"config: {done.path} already holds these URLs; "
                   + ("made it private (chmod 600)" if done.made_private else "unchanged"))
    else:
        if done.backup is not None:
            typer.echo(f"config: saved the previous {done.path.name} as {done.backup} "
                       f"(the last {configfile.BACKUPS_KEPT} are kept)")
        typer.echo(f"config: wrote {done.path} (0600)")
    try:
        example, refreshed = configfile.write_example(done.path.parent)
    except (NotifydError, OSError) as exc:
        # Only a reference is missing: the config itself is written and works.
        typer.echo(f"config: {configfile.EXAMPLE_NAME} not written beside it: "
                   f"{getattr(exc, 'message', None) or exc}", err=True)
        return done.changed
    if refreshed:
        typer.echo(f"config: every key and its default: {example}")
    return done.changed or refreshed


# -- the login hook -------------------------------------------------------------------------------


def _hook_step(p: paths.Paths, interactive: bool) -> bool:
    """Add the hook to ~/.bashrc once. True if anything changed."""
    ready = hook.prepare(p.home / ".bashrc", p.config_file.parent)
    if ready.refreshed:
        typer.echo(f"hook: wrote {ready.hook_file}")
    if ready.present_at:
        typer.echo(f"hook: already in {ready.bashrc} (line {ready.present_at}); unchanged")
        return ready.refreshed
    if interactive and not typer.confirm(
            f"Add the login hook to {ready.bashrc}? It starts the watcher when you log in "
            "(silent, ~1 ms)", default=True):
        typer.echo(f"hook: skipped; to add it later, append to {ready.bashrc}:\n"
                   + "\n".join(ready.lines[1:]))
        return ready.refreshed
    hook.add(ready)
    typer.echo(f"hook: added to {ready.bashrc}: source {ready.hook_file}")
    if any(line.startswith("NOTIFYD_BIN=") for line in ready.lines):
        typer.echo(f"hook: new shells have notifyd and pingch on PATH; this one after: source {ready.bashrc}")
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
