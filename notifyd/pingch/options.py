"""pingch's command line: the usage text, the parsing, and the check of each value.

Hand-written rather than argparse (~3 ms of every job's start, bench/: pingch
overhead). A bad command line is a usage error (exit 2) before anything runs.
"""

import os
import sys

from notifyd.pingch import facts

TYPE_CHECKING = False  # typing stays off the hot path
if TYPE_CHECKING:
    from typing import NoReturn

USAGE = """\
usage: pingch [OPTIONS] [--] COMMAND [ARGS...]
       pingch -p PID [OPTIONS but -d and -o]

Runs COMMAND, records its start and finish in the notifyd spool and exits with
its status; the notifyd watcher sends the notification. A single argument with
shell syntax ('make && ./run > log') runs under bash -c.

  -t, --title TITLE     the job's name in notifications (default: the command)
  -g, --group NAME      put the job in group NAME (1-64 of A-Z a-z 0-9 . _ -)
      --notify WHEN     failure: tell only if it fails; none: record it, tell
                        nobody; all: always (default)
      --tail FILE       send FILE's last lines (the job's log) with the message
  -n, --lines N         how many lines --tail sends: 1 to 50 (default 10)
      --attach FILE     attach FILE to the notification where the service can
      --hide-command    keep the command line out of the notification; the
                        default title is then the program's name only
  -d, --detach          run the job in the background so it survives logout;
                        prints its job id and returns at once
  -o, --output FILE     with -d: append the job's output to FILE
                        (default: $STATE/joblogs/JOB_ID.log)
  -p, --pid PID         watch a running process instead of starting one
  -h, --help            show this help
"""

EXIT_USAGE = 2
GROUP_MAX = 64
# A group name's characters, and a job id's (which pingch -d hands over).
NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
NOTIFY_WHEN = ("failure", "all", "none")
TAIL_LINES_MAX = 50


class Options:
    """pingch's command line, parsed and checked."""

    def __init__(self) -> None:
        self.title: str | None = None
        self.pid: int | None = None
        self.group: str | None = None
        self.notify = "all"
        self.tail: str | None = None
        self.lines: int | None = None
        self.attach: str | None = None
        self.hide_command = False
        self.detach = False
        self.output: str | None = None
        self.command: list[str] = []
        # The options again without -d/-o: what the background pingch of -d is given.
        self.inner_args: list[str] = []


# Option name -> attribute, for options that take a value (`-t X`, `--title=X`).
_VALUED = {"-t": "title", "--title": "title", "-p": "pid", "--pid": "pid", "-g": "group",
           "--group": "group", "--notify": "notify", "--tail": "tail", "-n": "lines",
           "--lines": "lines", "--attach": "attach", "-o": "output", "--output": "output"}
_FLAGS = {"--hide-command": "hide_command", "-d": "detach", "--detach": "detach"}


def parse_args(argv: list[str]) -> Options:
    """The options up to the command (the first argument that is not one, or after `--`)."""
    opts = Options()
    values: dict[str, tuple[str, str]] = {}  # attribute -> (option as typed, value)
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if arg in ("-h", "--help"):
            sys.stdout.write(USAGE)
            raise SystemExit(0)
        name, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in _VALUED:
            taken = [arg]
            if not eq:
                if i + 1 >= len(argv):
                    usage_error(f"{arg} needs a value")
                i += 1
                value = argv[i]
                taken.append(value)
            values[_VALUED[name]] = (name, value)
            if _VALUED[name] != "output":
                opts.inner_args += taken
        elif arg in _FLAGS:
            setattr(opts, _FLAGS[arg], True)
            if _FLAGS[arg] != "detach":
                opts.inner_args.append(arg)
        elif arg.startswith("-") and arg != "-":
            usage_error(f"unknown option {arg!r} (put -- before a command that starts with '-')")
        else:
            break
        i += 1
    opts.command = argv[i:]
    _check_values(opts, values)
    return opts


def _check_values(opts: Options, values: dict[str, tuple[str, str]]) -> None:
    """Turn the raw option values into opts' fields, or exit with a usage error."""
    for attr, (name, value) in values.items():
        if attr == "pid":
            if not (value.isascii() and value.isdigit()) or int(value) <= 0:
                usage_error(f"{name} needs a process id (a positive number), not {value!r}")
            if int(value) > (most := pid_max()):
                usage_error(f"{name} needs a process id from 1 to {most} (this system's "
                            f"pid_max), not {value!r}; ps -u $USER lists yours")
            opts.pid = int(value)
        elif attr == "lines":
            if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= TAIL_LINES_MAX:
                usage_error(f"{name} needs a number of lines from 1 to {TAIL_LINES_MAX}, not {value!r}")
            opts.lines = int(value)
        elif attr == "group":
            if not 1 <= len(value) <= GROUP_MAX or not NAME_CHARS.issuperset(value):
                usage_error(f"{name} needs a group name of 1 to {GROUP_MAX} letters, digits, "
                            f"'.', '_' or '-', not {value!r}")
            opts.group = value
        elif attr == "notify":
            if value not in NOTIFY_WHEN:
                usage_error(f"{name} takes failure, all or none, not {value!r}")
            opts.notify = value
        elif attr in ("tail", "attach", "output") and not value:
            usage_error(f"{name} needs a file name")
        else:
            setattr(opts, attr, value)
    if opts.lines is not None and opts.tail is None:
        usage_error("-n/--lines goes with --tail FILE")
    if opts.output is not None and not opts.detach:
        usage_error("-o/--output goes with -d (a job in the foreground writes where your shell says)")
    if opts.detach and opts.pid is not None:
        usage_error("-d starts a job in the background; it cannot follow a running -p PID")
    if opts.attach is not None:
        # Absolute now: the check at the job's end and the watcher need no cwd.
        opts.attach = os.path.normpath(os.path.join(facts.working_dir(), opts.attach))


def pid_max() -> int:
    """The largest process id this kernel gives (/proc/sys/kernel/pid_max); Linux's limit if unreadable."""
    try:
        with open("/proc/sys/kernel/pid_max", "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 4194304  # PID_MAX_LIMIT on 64-bit Linux (include/linux/threads.h)


def usage_error(message: str) -> "NoReturn":
    # Not the whole usage: its 25 lines would push the one that matters off
    # an 80x24 screen.
    sys.stderr.write(f"pingch: {message}\nsee pingch -h for the options\n")
    raise SystemExit(EXIT_USAGE)


# How the outer `pingch -d` hands the job to the pingch it starts (detach.py);
# the inner one removes them from the environment so the job (or a pingch
# inside it) never sees them. Read here, so a job in the foreground loads no
# -d code.
ENV_JOB_ID = "NOTIFYD_JOB_ID"
ENV_JOB_LOG = "NOTIFYD_JOB_LOG"


def handed_over() -> tuple[str, str]:
    """(job id, log) from the `pingch -d` that started this one, taken out of the environment.

    Removed so the job does not inherit them: a pingch inside the job is
    another job. An id that is not made of a host name's characters is ignored.
    """
    job = os.environ.pop(ENV_JOB_ID, "")
    log = os.environ.pop(ENV_JOB_LOG, "")
    if not 0 < len(job) <= 200 or not NAME_CHARS.issuperset(job):
        job = ""
    return job, log
