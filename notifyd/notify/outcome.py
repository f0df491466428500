"""How a job ended: one vocabulary for the messages, routing, the inbox and `notifyd jobs`.

    Outcome.of(ev)                  # Outcome.FAILED for {"exit": 3}
    Outcome.FAILED.is_bad           # True: failures and lost jobs are always told
    exit_words(3, None)             # "exit 3"; exit_words(None, 9): "killed by SIGKILL"

Three words that sound alike are kept apart in notifyd: the *outcome* (this
module), the *severity* of a message (Apprise's notify type: success,
failure, warning, info), and the *event* kind pingch writes (start, finish).
"""

from __future__ import annotations

import signal
from enum import Enum
from typing import Any


class Outcome(str, Enum):
    OK = "ok"
    FAILED = "failed"
    LOST = "lost"  # its finish will never come (watcher/lost.py)
    UNKNOWN = "unknown"  # nobody can know: pingch -p follows a process that is not its child

    @property
    def is_bad(self) -> bool:
        """A failure or a loss: never kept quiet by a filter, and routed to `failure` URLs."""
        return self in (Outcome.FAILED, Outcome.LOST)

    @classmethod
    def of(cls, ev: dict[str, Any]) -> Outcome:
        """The outcome of a finish (or lost) event; a scheduler's state leads where there is one."""
        if ev.get("lost"):
            return cls.LOST
        slurm_state = ev.get("slurm_state")
        if isinstance(slurm_state, str) and slurm_state:
            if ev.get("slurm_gone"):
                return cls.UNKNOWN  # its record was purged before its end was seen: never "completed"
            if slurm_state != "COMPLETED":
                return cls.FAILED
        ok = succeeded(ev)
        return cls.OK if ok is True else cls.FAILED if ok is False else cls.UNKNOWN

    @classmethod
    def named(cls, word: object) -> Outcome:
        """The outcome a stored word names; UNKNOWN for anything else."""
        try:
            return cls(word)
        except ValueError:
            return cls.UNKNOWN


BAD = (Outcome.FAILED.value, Outcome.LOST.value)  # as the words are stored


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def succeeded(ev: dict[str, Any]) -> bool | None:
    """True for exit 0, False for a failure, None when nobody can know (pingch -p)."""
    if _int(ev.get("signal")) is not None:
        return False
    code = _int(ev.get("exit"))
    return None if code is None else code == 0


def signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def exit_words(code: object, sig: object) -> str:
    """'exit 0', 'exit 3', 'killed by SIGKILL' or 'exit unknown'."""
    if _int(sig) is not None:
        return f"killed by {signal_name(int(sig))}"  # type: ignore[call-overload]
    if _int(code) is not None:
        return f"exit {code}"
    return "exit unknown"
