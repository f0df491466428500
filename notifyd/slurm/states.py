"""SLURM's job states: which are ends, and how each end is told.

The interfaces disagree on how an end is encoded (shared/design/slurm-facts.md
§3.1, §3.6): squeue gives the raw wait status (768 is exit 3), sacct and
scontrol "exit:signal"; a job killed by a signal is FAILED with reason
JobLaunchFailure (the signal is only in 0:9); TIMEOUT, CANCELLED and
PREEMPTED say 0:0 on the job's own line. So the state leads, and the exit
and signal are taken from whichever interface carries them.
"""

from __future__ import annotations

from typing import Any

# The states a job does not come back from (a requeue aside: NODE_FAIL and
# PREEMPTED may be followed by PENDING with one restart more).
ENDS = frozenset({"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "OUT_OF_MEMORY", "NODE_FAIL",
                  "PREEMPTED", "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "REVOKED"})
# Ends after which the controller may requeue the job.
REQUEUED_AFTER = frozenset({"NODE_FAIL", "PREEMPTED", "BOOT_FAIL"})
# sacct -s: the ends a catch-up asks for.
ENDS_SACCT = "CD,F,TO,CA,OOM,NF,PR,BF,DL"

WORDS = {
    "COMPLETED": "completed",
    "FAILED": "failed",
    "TIMEOUT": "hit its time limit",
    "CANCELLED": "was cancelled",
    "OUT_OF_MEMORY": "ran out of memory",
    "NODE_FAIL": "lost its node (NODE_FAIL)",
    "PREEMPTED": "was preempted",
    "BOOT_FAIL": "could not boot its node (BOOT_FAIL)",
    "DEADLINE": "missed its deadline",
    "SPECIAL_EXIT": "ended in a special exit",
    "REVOKED": "was revoked (a federated sibling ran it)",
}


def is_end(state: str) -> bool:
    return state in ENDS


def split_raw(raw: int | None) -> tuple[int | None, int | None]:
    """squeue's exit_code (a wait status) as (exit, signal)."""
    if raw is None:
        return None, None
    sig = raw & 0x7F
    return (None, sig) if sig else (raw >> 8, None)


def end_fields(state: str, *, exit_pair: tuple[int, int] | None = None, exit_raw: int | None = None,
               step_signals: tuple[int, ...] = ()) -> dict[str, Any]:
    """The finish event's exit, signal and oom for a job that ended in `state`.

    COMPLETED is exit 0. FAILED takes the exit code, or the signal when
    there is one ("0:9" for a SIGKILL, whatever the reason text says).
    OUT_OF_MEMORY is an OOM kill. The others (TIMEOUT, CANCELLED, NODE_FAIL,
    PREEMPTED...) carry no exit of their own: the state is the outcome, and a
    signal the steps got (TIMEOUT's SIGTERM) is kept when known.
    """
    code, sig = (exit_pair if exit_pair is not None else (None, None))
    if exit_pair is None and exit_raw is not None:
        code, sig = split_raw(exit_raw)
    if state == "COMPLETED":
        return {"exit": 0, "signal": None}
    if state == "FAILED":
        if sig:
            return {"exit": None, "signal": sig}
        return {"exit": code if code else 1, "signal": None}
    if state == "OUT_OF_MEMORY":
        return {"exit": None, "signal": 9, "oom": True}
    steps = [s for s in step_signals if s]
    return {"exit": None, "signal": sig or (steps[0] if steps else None)}
