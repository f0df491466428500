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

from __future__ import annotations

import sys

from notifyd.pingch import detach, follow, options, record, run


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    opts = options.parse_args(args)
    job, log = detach.handed_over()
    recorder = record.HostRecorder()
    if opts.pid is not None:
        if opts.command:
            options.usage_error("give either -p PID or a COMMAND, not both")
        return follow.watch_pid(opts.pid, opts, recorder)
    if not opts.command:
        options.usage_error("no COMMAND given")
    if opts.detach:
        return detach.detach(opts, recorder)
    return run.run_job(opts, recorder, job=job, log=log)


if __name__ == "__main__":
    sys.exit(main())
