"""Running SLURM's client tools: bounded, never raising, every call counted.

Each call is a remote procedure call to the controller (squeue, scontrol,
sinfo) or to slurmdbd (sacct); SchedMD's man pages ask programs to keep them
to the minimum, and users who polled per job overloaded their controllers
(shared/design/slurm-facts.md §4.1). So a caller makes one call per poll for
all the user's jobs, and this module counts them. Times come as epoch
seconds (SLURM_TIME_FORMAT=%s); a call that hangs (a dead controller: squeue
waits twice its MessageTimeout) is cut at `timeout`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass

# sacct's answer when the site keeps no accounting database.
NO_ACCOUNTING = "accounting storage is disabled"
# A client with no slurm.conf looks for the controller in DNS, and says this when it finds none.
NO_CLUSTER = "resolve_ctls_from_dns_srv"


@dataclass(frozen=True)
class Answer:
    """What one call gave: its output, or why there is none."""

    argv: tuple[str, ...]
    ok: bool
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    timed_out: bool = False
    missing: bool = False  # the tool is not installed here

    @property
    def problem(self) -> str:
        """One line for the log and `notifyd status`: what went wrong ('' when nothing)."""
        if self.ok:
            return ""
        if self.missing:
            return f"{self.argv[0]} is not installed on this host"
        if self.timed_out:
            return f"{self.argv[0]} did not answer within {self.seconds:.0f} s"
        if NO_CLUSTER in self.stderr:
            return (f"{self.argv[0]} finds no SLURM cluster from this host (no slurm.conf, no DNS "
                    "record); [slurm] enabled = no stops the tries")
        first = (self.stderr.strip().splitlines() or ["no output"])[0]
        return f"{self.argv[0]} failed: {first[:200]}"

    @property
    def no_accounting(self) -> bool:
        return NO_ACCOUNTING in self.stderr.lower()


def available() -> bool:
    """Are SLURM's client tools on this host (the one that holds the lease)?"""
    return shutil.which("squeue") is not None


def run(argv: list[str], timeout: float) -> Answer:
    """Run one client command; an Answer in every case."""
    exe = shutil.which(argv[0])
    if exe is None:
        return Answer(tuple(argv), ok=False, missing=True)
    env = {**os.environ, "SLURM_TIME_FORMAT": "%s"}
    started = time.monotonic()
    try:
        p = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, errors="replace",
                           timeout=timeout, env=env, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        return Answer(tuple(argv), ok=False, seconds=time.monotonic() - started, timed_out=True)
    except OSError as exc:
        return Answer(tuple(argv), ok=False, stderr=str(exc), seconds=time.monotonic() - started)
    return Answer(tuple(argv), ok=p.returncode == 0, stdout=p.stdout, stderr=p.stderr,
                  seconds=time.monotonic() - started)
