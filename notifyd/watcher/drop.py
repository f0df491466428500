"""Dropping deliveries that wait for a URL no longer configured, when the user asks (`notifyd drop`).

Such deliveries are kept, not dropped by themselves: a config emptied for a
moment (an editor saving, `init` rewriting it) must lose nothing, and a URL
configured again gets what waited for it. The watcher never sends to a URL
that is not configured (it has no target for it), and gives them up after
`retry_for`. `notifyd drop` ends the wait at once: only the lease holder
may change the state, so the command writes a request, and the holder
takes it in its next round.

The request: `$STATE/drop/<host>`, written by `notifyd drop` on that host
(temp + rename: one writer per file, docs/ARCHITECTURE.md), one target key
per line; the holder removes it once the state it saved holds the drop. It drops only keys that are not
configured in the watcher either: a URL configured again keeps its messages.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from notifyd import fsutil
from notifyd.state import State

log = logging.getLogger("notifyd")
MAX_KEYS = 1000  # a request is a list of hashes; anything longer is not one


@dataclass(frozen=True)
class Dropped:
    """What one taken request came to."""

    path: Path  # the request, removed once the state holds what it did (finish())
    entries: int  # deliveries dropped (one entry for one URL)
    kept: list[str]  # keys asked for that are configured (again): not dropped


def request(drop_dir: Path, host: str, keys: list[str]) -> Path:
    """Ask the watcher to drop what waits for `keys` (notifyd drop)."""
    path = drop_dir / host
    body = "".join(f"{k}\n" for k in keys).encode()
    fsutil.atomic_write(path, body, drop_dir / f".{host}.{os.getpid()}.tmp")
    return path


def pending(drop_dir: Path) -> list[Path]:
    """The requests waiting for the watcher (temporary files left out)."""
    try:
        return sorted(p for p in drop_dir.iterdir() if not p.name.startswith("."))
    except OSError:  # no request was ever made (no directory), or it cannot be read
        return []


def _keys(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="ascii", errors="replace").split()
    except OSError:
        return []
    return [k for k in lines[:MAX_KEYS] if k.isalnum()]


def take(state: State, drop_dir: Path, configured: set[str]) -> list[Dropped]:
    """Apply every request to the state; the caller saves it, then calls finish()."""
    done = []
    for path in pending(drop_dir):
        asked = _keys(path)
        drop = {k for k in asked if k not in configured}
        entries = 0
        for entry in state.outbox:
            for key in drop & set(entry.targets):
                entry.targets.remove(key)
                entry.retry.pop(key, None)
                entries += 1
        state.outbox = [e for e in state.outbox if e.targets]
        for key in drop:
            # A batch waiting for the URL would become a digest waiting for it.
            for table in (state.batches, state.recent, state.budget, state.backoff, state.url_names):
                table.pop(key, None)
        kept = [k for k in asked if k in configured]
        log.info("dropped %d deliveries waiting for %d URL(s) no longer configured, as asked from %s%s",
                 entries, len(drop), path.name, f"; kept {len(kept)} configured again" if kept else "")
        done.append(Dropped(path, entries, kept))
    return done


def finish(done: list[Dropped]) -> None:
    """Remove the requests taken, once the state that holds them is saved (`notifyd drop` waits for it)."""
    for item in done:
        try:
            item.path.unlink()
        except FileNotFoundError:
            pass
