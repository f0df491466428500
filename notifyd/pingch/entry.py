"""pingch: run a job, record its start and finish, make sure a watcher will tell you.

    $ pingch -t relax python relax.py > relax.log &
    $ pingch 'make && ./run > out.log'        # one argument with shell syntax: bash -c
    $ pingch -p 4242 -t "old run"             # watch a process started without pingch
    $ pingch -d -g sweep --tail out.log ./run # survives logout; last lines in the message

The job comes first: pingch runs the command exactly as given, forwards the
signals it receives, exits with the job's status (128+N when killed by signal
N) and never lets notification trouble touch the job. It is on every job's
path, so it imports only the standard library's cheapest modules: no typer,
apprise, psutil, json, subprocess or argparse.

The phases live beside this entry: options.py (the command line), run.py (the
job in the foreground), follow.py (-p), detach.py (-d), record.py (the events
and this host's spool) and facts.py (what is read at the job's end).
"""

import os
import sys

from notifyd.pingch import options, record, run

TYPE_CHECKING = False  # typing stays off the hot path
if TYPE_CHECKING:
    from typing import NoReturn


def script() -> "NoReturn":
    """scripts/pingch: main(), then exit with its status without Python's shutdown.

    The shutdown (every module torn down, a last garbage collection) costs
    ~2 ms of each job's wall time here (bench/: pingch overhead) and does
    nothing pingch needs: its files are closed when it returns, it registers
    no atexit handler and starts no thread. stdout and stderr are flushed
    first; if that fails (a closed pipe), the usual exit reports it as it
    always did.
    """
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        sys.exit(code)
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    opts = options.parse_args(args)
    job, log = options.handed_over()
    recorder = record.HostRecorder()
    if opts.pid is not None:
        if opts.command:
            options.usage_error("give either -p PID or a COMMAND, not both")
        from notifyd.pingch import follow  # -p only: a job never loads it

        return follow.watch_pid(opts.pid, opts, recorder)
    if not opts.command:
        options.usage_error("no COMMAND given")
    # A job handed over by `pingch -d` is the job's own pingch, given -d
    # again only so that ps names it (detach.inner_argv): it runs the job.
    if opts.detach and not job:
        from notifyd.pingch import detach  # -d only: the job's own pingch never loads it

        return detach.detach(opts, recorder)
    return run.run_job(opts, recorder, job=job, log=log)


if __name__ == "__main__":
    sys.exit(main())
