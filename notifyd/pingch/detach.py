"""pingch -d: run the job under a pingch of its own that survives logout.

The outer pingch opens the job's log, starts the inner one in a session of its
own and returns at once with the job's id; the inner pingch takes the id and
the log from its environment (options.handed_over) and runs the job as in
the foreground (run.py).
"""

import os
import sys

from notifyd import paths
from notifyd.pingch import facts
from notifyd.pingch.options import ENV_JOB_ID, ENV_JOB_LOG
from notifyd.spool import events

TYPE_CHECKING = False  # typing stays off the hot path
if TYPE_CHECKING:
    import signal

    from notifyd.pingch.options import Options
    from notifyd.pingch.record import HostRecorder
else:
    import _signal as signal  # as in run.py: enum stays unloaded

EXIT_ERROR = 1  # pingch -d could not start the job (its log or the spawn failed)
def detach(opts: "Options", recorder: "HostRecorder") -> int:
    """pingch -d: start this pingch again in a session of its own and return at once.

    The job's pingch gets the job id from here (so it can be printed now), its
    own session (no controlling terminal: the hangup at logout cannot reach
    it), SIGHUP ignored for good measure, stdin from /dev/null and its output
    appended to the log.
    """
    job = events.new_job_id(recorder.host, os.getpid())
    try:
        log, fd = _open_log(opts, recorder.state_dir, job)
    except OSError as exc:
        target = opts.output or paths.job_logs_dir_str(recorder.state_dir)
        sys.stderr.write(f"pingch: cannot open {target} for the job's output: {exc.strerror or exc}; "
                         "the job was not started (name another file with -o FILE)\n")
        return EXIT_ERROR
    from notifyd.watcher import launch  # -d only: a job in the foreground never loads it

    argv = inner_argv(opts)
    env = {**os.environ, ENV_JOB_ID: job, ENV_JOB_LOG: log}
    # The child inherits an ignored SIGHUP, and the job pingch starts keeps it
    # ignored (see run.py's _block_signals); a handler would be reset by exec.
    old_hup = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        launch.spawn_detached(argv, env, out_fd=fd, keep_sigmask=True)
    except OSError as exc:
        sys.stderr.write(f"pingch: cannot start the job in the background: {exc}\n")
        return EXIT_ERROR
    finally:
        signal.signal(signal.SIGHUP, old_hup)
        os.close(fd)
    sys.stderr.write(f"pingch: started {job} in the background; output in {log}\n")
    sys.stdout.write(f"{job}\n")
    facts.warn_if_busy(recorder.host, recorder.state_dir)  # here, where the user looks
    # Here, not only in the job's pingch: that one's stderr is the job's log,
    # and a watcher that cannot start must be said where the user looks.
    recorder.ensure_watcher()
    return 0


def inner_argv(opts: "Options") -> list[str]:
    """The job's pingch: this pingch script again, as `pingch -d [OPTIONS] COMMAND…` in ps.

    It runs for as long as the job, so ps, top and `notifyd procs` should
    name it: `python3 …/bin/pingch -d ./run.sh` (top: `pingch`), not a
    `python3 -c import sys; …` program. The -d it is given does not detach
    again: the job id handed over in its environment says it is the job's
    pingch (entry.main). `--` only where the command itself starts with '-'.
    Where this process is not the installed script (an older pingch's -c
    entry, a test calling main()), the -c entry of installed code is used,
    as launch.python_entry says why.
    """
    rest = [*opts.inner_args, *(["--"] if opts.command[0].startswith("-") else []), *opts.command]
    script = sys.argv[0]
    if os.path.basename(script) == "pingch" and _installed_script(script):
        return [os.path.abspath(script), "-d", *rest]
    from notifyd.watcher import launch

    return [sys.executable, "-c", launch.python_entry("pingch", "notifyd.pingch.entry", "main"),
            *opts.inner_args, "--", *opts.command]


def _installed_script(path: str) -> bool:
    """Is `path` a script the kernel can start by itself: executable, with an absolute #! line?

    A path, not a bare name (the -c entry sets argv[0] to 'pingch', which
    would be looked up in the job's directory); and installed, since the
    repository's scripts/pingch says `#!python` until pip rewrites it.
    """
    if "/" not in path or not os.access(path, os.X_OK):
        return False
    try:
        with open(path, "rb") as f:
            return f.read(3) == b"#!/"
    except OSError:
        return False


def _open_log(opts: "Options", state_dir: str, job: str) -> tuple[str, int]:
    """(path, fd open for appending) of the detached job's output; OSError if it cannot be opened."""
    if opts.output is None:
        if not state_dir:  # no home (record.HostRecorder has said so): never a log in the job's cwd
            raise OSError("no state directory to keep it in")
        log = paths.job_log_str(state_dir, job)
        paths.ensure_private_dir(os.path.dirname(log), state_dir)
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    else:
        log = os.path.normpath(os.path.join(facts.working_dir(), opts.output))
        # A file the user names is created as a shell's `>> FILE` would create it.
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
    return log, fd
