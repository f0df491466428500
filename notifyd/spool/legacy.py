"""The old bash function's ~/.pingchilling lines, so a lab can switch without losing a job.

    1001@node5: Started [python] 2025-10-03 13:05:59
    1001@node5: Finished [0] 2025-10-03 13:40:01

Times are the writing host's local time without an offset; they are read in
this host's time zone (a lab's machines share one).
"""

import re
import time
from dataclasses import dataclass

from notifyd.spool.events import TIME_MAX

# ASCII digits only: \d would take any script's digits, and int() of 5,000 of
# them raises a ValueError of its own.
_LINE = re.compile(
    r"^(?P<pid>[0-9]{1,18})@(?P<host>[^\s:]+): (?P<kind>Started|Finished) \[(?P<arg>.*)\] "
    r"(?P<when>[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2})\s*$"
)


@dataclass(frozen=True)
class LegacyLine:
    kind: str  # "start" or "finish"
    pid: int
    host: str
    arg: str  # the title for a start, the exit status for a finish
    ts: float

    @property
    def key(self) -> str:
        return f"{self.pid}@{self.host}"


def job_id(host: str, pid: int | str, start_ts: float | None) -> str:
    """The id a legacy job goes by: its finish, `notifyd jobs` and the inbox all name it so."""
    return f"legacy-{host}-{pid}-{int(start_ts or 0)}"


def parse(raw: bytes) -> LegacyLine:
    """One line, or ValueError saying why it is not one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    match = _LINE.match(text)
    if not match:
        raise ValueError("not a 'PID@host: Started|Finished [..] YYYY-MM-DD HH:MM:SS' line")
    try:
        ts = time.mktime(time.strptime(match["when"], "%Y-%m-%d %H:%M:%S"))
    except (ValueError, OverflowError):
        raise ValueError(f"bad date {match['when']!r}") from None
    if not 0 <= ts <= TIME_MAX:
        raise ValueError(f"date {match['when']!r} is not between 1970 and 2242")  # as in events
    kind = "start" if match["kind"] == "Started" else "finish"
    return LegacyLine(kind, int(match["pid"]), match["host"], match["arg"], ts)
