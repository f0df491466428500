"""pingch, the job wrapper: the job comes first, its start and finish land in the spool.

Everything runs the real installed `pingch` console script in an isolated home
(see conftest.py); the background watcher it spawns is killed by the fixture.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from harness import (
    BIN,
    PINGCH,
    PY,
    Home,
    by_kind,
    imported_modules,
    lease_holder,
    only,
    start_and_finish,
    wait_until,
)

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")
PINGCH_DIR = Path(__file__).resolve().parents[2] / "notifyd" / "pingch"


# -- helpers --------------------------------------------------------------------
def popen_pingch(home: Home, *args: str, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([PINGCH, *args], env=home.env, text=True, **kw)


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def wait_for_start(home: Home) -> dict[str, Any]:
    return wait_until(lambda: by_kind(home, "start") and by_kind(home, "start")[0], 15, "the start event")


def sig_ignored(status_text: str, sig: int) -> bool:
    """Is `sig` in the SigIgn mask of a /proc/<pid>/status text?"""
    line = next(ln for ln in status_text.splitlines() if ln.startswith("SigIgn:"))
    return bool(int(line.split()[1], 16) & (1 << (sig - 1)))


def path_env(home: Home) -> dict[str, str]:
    return {**home.env, "PATH": f"{BIN}{os.pathsep}{home.env.get('PATH', '')}"}


# -- exit status ------------------------------------------------------------------
def test_exit_status_is_zero_when_the_job_succeeds(home: Home) -> None:
    assert home.pingch("true").returncode == 0


def test_exit_status_is_the_jobs_exit_code(home: Home) -> None:
    assert home.pingch("sh", "-c", "exit 3").returncode == 3


def test_failing_job_stops_a_shell_and_chain(home: Home) -> None:
    p = subprocess.run(["bash", "-c", f"{PINGCH} false && echo next"], env=home.env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert p.stdout == ""


def test_succeeding_job_continues_a_shell_and_chain(home: Home) -> None:
    p = subprocess.run(["bash", "-c", f"{PINGCH} true && echo next"], env=home.env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0
    assert p.stdout == "next\n"


def test_job_killed_by_signal_gives_128_plus_signal(home: Home) -> None:
    assert home.pingch("sh", "-c", "kill -9 $$").returncode == 137


def test_finish_event_of_a_killed_job_has_signal_and_no_exit(home: Home) -> None:
    home.pingch("sh", "-c", "kill -9 $$")
    finish = only(home, "finish")
    assert finish["signal"] == 9
    assert finish["exit"] is None


# -- how the command runs -------------------------------------------------------------
def test_arguments_are_passed_to_the_job_exactly(home: Home) -> None:
    args = ["a b", "c'd", "$HOME", ""]
    p = home.pingch(PY, "-c", "import json,sys; print(json.dumps(sys.argv[1:]))", *args)
    assert p.returncode == 0
    assert json.loads(p.stdout) == args


def test_cmd_in_the_event_is_the_command_line_quoted_for_the_shell(home: Home) -> None:
    argv = ["printf", "%s\\n", "a b", "c'd", "$HOME", ""]
    home.pingch(*argv)
    assert shlex.split(only(home, "start")["cmd"]) == argv


def test_single_argument_with_shell_syntax_runs_under_bash(home: Home, tmp_path: Path) -> None:
    p = home.pingch("echo one && echo two > out.txt", cwd=tmp_path)
    assert p.returncode == 0
    assert p.stdout == "one\n"
    assert (tmp_path / "out.txt").read_text() == "two\n"
    assert only(home, "start")["cmd"] == "echo one && echo two > out.txt"


def test_single_plain_word_is_not_run_through_bash(home: Home) -> None:
    assert home.pingch("true").returncode == 0
    assert only(home, "start")["cmd"] == "true"


def test_double_dash_lets_the_command_follow(home: Home) -> None:
    assert home.pingch("--", "true").returncode == 0
    assert only(home, "start")["cmd"] == "true"


# -- events -----------------------------------------------------------------------------
def test_start_and_finish_events_are_written_to_this_hosts_spool(home: Home) -> None:
    home.pingch("true")
    assert home.spool.name == f"{home.host}.jsonl"
    assert [ev["ev"] for ev in home.events()] == ["start", "finish"]


def test_start_and_finish_share_job_identity(home: Home, tmp_path: Path) -> None:
    p = home.pingch("sh", "-c", "echo $$", cwd=tmp_path)
    start, finish = start_and_finish(home)
    job_pid = int(p.stdout)
    for ev in (start, finish):
        assert ev["job"] == start["job"]
        assert ev["user"] == home.env["USER"]
        assert ev["host"] == home.host
        assert ev["pid"] == job_pid
        assert ev["cmd"] == "sh -c 'echo $$'"
        assert ev["title"] == "sh -c echo $$"
        assert ev["cwd"] == os.path.realpath(tmp_path)
    assert finish["job"] == start["job"]


def test_event_times_are_iso8601_with_offset(home: Home) -> None:
    home.pingch("true")
    start, finish = start_and_finish(home)
    assert ISO.match(start["start"]), start["start"]
    assert ISO.match(finish["start"]), finish["start"]
    assert ISO.match(finish["end"]), finish["end"]


def test_finish_duration_covers_the_jobs_run_time(home: Home) -> None:
    home.pingch("sleep", "0.5")
    assert only(home, "finish")["duration"] >= 0.5


def test_finish_reports_peak_memory(home: Home) -> None:
    home.pingch("true")
    assert only(home, "finish")["maxrss_kb"] > 0


def test_finish_reports_cpu_time_of_the_job(home: Home) -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    home.pingch(PY, "-c", burn)
    assert only(home, "finish")["cpu_s"] >= 0.2


def test_finish_records_exit_zero(home: Home) -> None:
    home.pingch("true")
    finish = only(home, "finish")
    assert finish["exit"] == 0
    assert finish["signal"] is None


def test_finish_records_a_nonzero_exit(home: Home) -> None:
    home.pingch("sh", "-c", "exit 3")
    assert only(home, "finish")["exit"] == 3


def test_default_title_is_the_command_line(home: Home) -> None:
    home.pingch("sleep", "0")
    assert only(home, "start")["title"] == "sleep 0"


def test_default_title_is_shortened_to_80_characters(home: Home) -> None:
    long_arg = "x" * 200
    home.pingch("echo", long_arg)
    title = only(home, "start")["title"]
    assert len(title) <= 80
    assert title.startswith("echo xxx")


def test_dash_t_sets_the_title(home: Home) -> None:
    home.pingch("-t", "my relax run", "true")
    start, finish = start_and_finish(home)
    assert start["title"] == finish["title"] == "my relax run"


def test_title_equals_form_sets_the_title(home: Home) -> None:
    home.pingch("--title=relax", "true")
    assert only(home, "start")["title"] == "relax"


def test_spool_file_is_private(home: Home) -> None:
    home.pingch("true")
    assert stat.S_IMODE(home.spool.stat().st_mode) == 0o600


def test_events_and_state_dirs_are_private(home: Home) -> None:
    home.pingch("true")
    assert stat.S_IMODE(home.spool.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(home.state_dir.stat().st_mode) == 0o700


def test_job_ids_are_unique_across_runs(home: Home) -> None:
    runs = 25
    for _ in range(runs):
        assert home.pingch("true").returncode == 0
    ids = [ev["job"] for ev in by_kind(home, "start")]
    assert len(ids) == runs
    assert len(set(ids)) == runs
    assert sorted(ev["job"] for ev in by_kind(home, "finish")) == sorted(ids)


# -- signals -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sig", "code"),
    [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129), (signal.SIGQUIT, 131)],
    ids=lambda v: v.name if isinstance(v, signal.Signals) else str(v),
)
def test_signal_to_pingch_is_forwarded_to_the_job(home: Home, tmp_path: Path,
                                                  sig: signal.Signals, code: int) -> None:
    # ulimit -c 0: SIGQUIT must not leave a core file behind.
    proc = popen_pingch(home, "sh", "-c", "ulimit -c 0; exec sleep 30", cwd=tmp_path)
    try:
        wait_for_start(home)
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == code
    finally:
        stop(proc)
    finish = only(home, "finish")
    assert finish["signal"] == sig
    assert finish["exit"] is None


def test_sigusr1_reaches_a_job_that_traps_it(home: Home) -> None:
    script = ("import signal, sys, time\n"
              "signal.signal(signal.SIGUSR1, lambda *_: sys.exit(42))\n"
              "print('ready', flush=True)\n"
              "time.sleep(30)\n")
    proc = popen_pingch(home, PY, "-c", script, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        wait_for_start(home)
        proc.send_signal(signal.SIGUSR1)
        assert proc.wait(timeout=20) == 42
    finally:
        stop(proc)
    assert only(home, "finish")["exit"] == 42


def test_kill_percent_job_in_a_job_control_shell(home: Home) -> None:
    # `wait $!`, not a bare `wait`: bash's bare wait always returns 0. The loop
    # waits for the start event instead of a fixed `sleep 1`.
    script = (f"set -m; pingch sleep 30 & "
              f"until [ -s {shlex.quote(str(home.spool))} ]; do sleep 0.05; done; "
              "kill %1; wait $!; echo rc=$?")
    p = subprocess.run(["bash", "-c", script], env=path_env(home), capture_output=True, text=True,
                       timeout=60)
    assert p.stdout.strip() == "rc=143"
    assert only(home, "finish")["signal"] == 15


def test_signal_ignored_by_the_caller_stays_ignored_for_the_job(home: Home) -> None:
    check = ("import signal,sys; "
             "sys.exit(signal.getsignal(signal.SIGINT) == signal.SIG_IGN and 7 or 0)")
    p = subprocess.run(["bash", "-c", f'trap "" INT; pingch {PY} -c {shlex.quote(check)}'],
                       env=path_env(home), capture_output=True, text=True, timeout=60)
    assert p.returncode == 7, p.stderr


def test_signal_not_ignored_by_the_caller_is_not_ignored_for_the_job(home: Home) -> None:
    direct = subprocess.run(["cat", "/proc/self/status"], env=home.env, capture_output=True,
                            text=True, timeout=60)
    assert not sig_ignored(direct.stdout, signal.SIGPIPE)  # the caller's disposition: default
    wrapped = home.pingch("cat", "/proc/self/status")
    assert not sig_ignored(wrapped.stdout, signal.SIGPIPE)
    assert not sig_ignored(wrapped.stdout, signal.SIGXFSZ)


# -- never harms the job ------------------------------------------------------------------
def test_unusable_state_dir_still_runs_the_job_with_one_warning(home: Home, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a directory\n")
    env = {**home.env, "NOTIFYD_STATE_DIR": str(afile / "state")}
    p = subprocess.run([PINGCH, "sh", "-c", "echo job-output; exit 5"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 5
    assert p.stdout == "job-output\n"
    warnings = [ln for ln in p.stderr.splitlines() if ln.startswith("pingch: warning:")]
    assert len(warnings) == 1, p.stderr
    assert str(afile) in warnings[0]


def test_spool_file_that_is_a_directory_warns_once_and_keeps_the_exit_status(home: Home) -> None:
    home.spool.mkdir(parents=True)
    p = home.pingch("sh", "-c", "echo job-output; exit 4")
    assert p.returncode == 4
    assert p.stdout == "job-output\n"
    warnings = [ln for ln in p.stderr.splitlines() if ln.startswith("pingch: warning:")]
    assert len(warnings) == 1, p.stderr
    assert str(home.spool) in warnings[0]


# -- commands that cannot run -----------------------------------------------------------------
def test_command_not_found_exits_127(home: Home) -> None:
    p = home.pingch("no-such-command-zz9")
    assert p.returncode == 127
    assert "command not found" in p.stderr


def test_command_not_found_records_a_finish_event_with_127(home: Home) -> None:
    home.pingch("no-such-command-zz9")
    assert only(home, "finish")["exit"] == 127


def test_non_executable_file_exits_126(home: Home, tmp_path: Path) -> None:
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    p = home.pingch(str(script))
    assert p.returncode == 126
    assert only(home, "finish")["exit"] == 126


# -- usage errors --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "no COMMAND given"),
        (("-t",), "-t needs a value"),
        (("-p", "abc"), "'abc'"),
        (("-x",), "unknown option '-x'"),
    ],
    ids=["no-command", "t-without-value", "p-not-a-number", "unknown-option"],
)
def test_usage_error_exits_2_with_a_message(home: Home, args: tuple[str, ...], message: str) -> None:
    p = home.pingch(*args)
    assert p.returncode == 2
    assert message in p.stderr
    assert "see pingch -h" in p.stderr and "usage: pingch" not in p.stderr
    assert home.events() == []


def test_non_ascii_digit_pid_is_a_usage_error(home: Home) -> None:
    p = home.pingch("-p", "²")
    assert p.returncode == 2
    assert "Traceback" not in p.stderr


# -- pingch -p PID ------------------------------------------------------------------------
def test_watching_a_pid_returns_after_the_process_ends(home: Home) -> None:
    sleeper = subprocess.Popen(["sleep", "1.5"])
    try:
        p = home.pingch("-p", str(sleeper.pid), "-t", "watched")
        assert p.returncode == 0, p.stderr
        assert sleeper.poll() is not None  # it had ended (a zombie) when pingch returned
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


def test_watching_a_pid_records_a_watched_job_with_unknown_exit(home: Home) -> None:
    sleeper = subprocess.Popen(["sleep", "1.5"])
    try:
        home.pingch("-p", str(sleeper.pid), "-t", "watched")
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
        sleeper.wait()
    start, finish = start_and_finish(home)
    assert start["watched"] is True
    assert start["job"] == finish["job"]
    assert start["pid"] == finish["pid"] == sleeper.pid
    assert start["title"] == finish["title"] == "watched"
    assert "sleep" in start["cmd"]
    assert finish["exit"] is None
    assert finish["exit_unknown"] is True


def test_watching_a_nonexistent_pid_is_a_wrong_value_exit_2_naming_it(home: Home) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    p = home.pingch("-p", str(gone.pid))
    assert p.returncode == 2
    assert f"-p {gone.pid}: no running process has that pid" in p.stderr
    assert home.events() == []


# -- hot path and the watcher -----------------------------------------------------------------
def test_hot_path_imports_no_heavy_modules(home: Home) -> None:
    baseline = imported_modules("pass", home.env)
    modules = sorted(f"notifyd.pingch.{p.stem}" for p in PINGCH_DIR.glob("*.py") if p.stem != "__init__")
    imported = imported_modules("import " + ", ".join(modules), home.env)
    assert "notifyd.pingch.entry" in imported  # the parse works
    assert set(modules) <= imported
    heavy = {"typer", "apprise", "psutil", "json", "subprocess", "argparse", "dataclasses", "typing",
             "enum"}
    checked = heavy - baseline
    assert "json" in checked  # the test still checks something
    loaded = {name for name in imported if name.split(".")[0] in checked}
    assert loaded == set()


def test_pingch_starts_a_watcher_in_the_background(home: Home) -> None:
    t0 = time.monotonic()
    assert home.pingch("true").returncode == 0
    assert time.monotonic() - t0 < 5
    pid = wait_until(lambda: lease_holder(home), 15, "a watcher to hold the lease")
    assert pid != os.getpid()


def test_watcher_started_by_pingch_stops_on_sigterm(home: Home) -> None:
    home.pingch("true")
    pid = wait_until(lambda: lease_holder(home), 15, "a watcher to hold the lease")
    os.kill(pid, signal.SIGTERM)

    def gone() -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    wait_until(gone, 10, "the watcher to stop on SIGTERM")
