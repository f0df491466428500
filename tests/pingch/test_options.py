"""pingch's options: groups, when to notify, log tails, attachments, hidden commands, detached jobs.

Everything but the byte-counting and kernel-log tests runs the real
installed `pingch` in an isolated home (see conftest.py).
"""

from __future__ import annotations

import os
import shlex
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import BIN, PY, Home, by_kind, only, start_and_finish, wait_until

from notifyd.pingch import facts, options
from notifyd.spool import events


# -- helpers --------------------------------------------------------------------
def wait_for(home: Home, kind: str, timeout: float = 20) -> dict[str, Any]:
    found: dict[str, Any] = wait_until(lambda: by_kind(home, kind) and by_kind(home, kind)[0],
                                       timeout, f"the {kind} event")
    return found


def path_env(home: Home) -> dict[str, str]:
    return {**home.env, "PATH": f"{BIN}{os.pathsep}{home.env.get('PATH', '')}"}


def usage_error(p: subprocess.CompletedProcess[str], home: Home, message: str) -> None:
    assert p.returncode == 2, p.stderr
    assert message in p.stderr
    # The error and where to look, not the whole usage (it would scroll the error away).
    assert p.stderr.splitlines()[1:] == ["see pingch -h for the options"], p.stderr
    assert "Traceback" not in p.stderr
    assert home.events() == []


@pytest.fixture
def session_leaders() -> Iterator[list[subprocess.Popen[str]]]:
    """Shells started in sessions of their own; whatever is left of their groups is killed."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


# -- -g/--group -------------------------------------------------------------------
def test_group_is_written_in_start_and_finish(home: Home) -> None:
    home.pingch("-g", "sweep-3.a_b", "true")
    start, finish = start_and_finish(home)
    assert start["group"] == finish["group"] == "sweep-3.a_b"


def test_long_group_option_with_equals_sets_the_group(home: Home) -> None:
    home.pingch("--group=relax", "true")
    assert only(home, "start")["group"] == "relax"


def test_group_of_64_characters_is_accepted(home: Home) -> None:
    assert home.pingch("-g", "g" * 64, "true").returncode == 0
    assert only(home, "finish")["group"] == "g" * 64


def test_job_without_group_has_no_group_field(home: Home) -> None:
    home.pingch("true")
    assert "group" not in only(home, "finish")


@pytest.mark.parametrize("name", ["", "a b", "g" * 65, "é", "a/b", "x;y"],
                         ids=["empty", "space", "65-chars", "non-ascii", "slash", "semicolon"])
def test_invalid_group_name_is_a_usage_error_and_the_job_does_not_run(
        home: Home, tmp_path: Path, name: str) -> None:
    marker = tmp_path / "ran"
    p = home.pingch("-g", name, "touch", str(marker))
    usage_error(p, home, "group name")
    assert not marker.exists()


# -- --notify -----------------------------------------------------------------------
@pytest.mark.parametrize("when", ["failure", "none"])
def test_notify_failure_or_none_is_written_in_both_events(home: Home, when: str) -> None:
    home.pingch("--notify", when, "true")
    start, finish = start_and_finish(home)
    assert start["notify"] == finish["notify"] == when


def test_notify_all_is_the_default_and_is_not_written(home: Home) -> None:
    home.pingch("--notify=all", "true")
    start, finish = start_and_finish(home)
    assert "notify" not in start
    assert "notify" not in finish


@pytest.mark.parametrize("when", ["never", "FAILURE", ""])
def test_unknown_notify_value_is_a_usage_error(home: Home, when: str) -> None:
    usage_error(home.pingch("--notify", when, "true"), home, "--notify takes failure, all or none")


# -- --tail FILE [-n N] ------------------------------------------------------------------
def test_tail_sends_the_last_lines_the_job_wrote(home: Home, tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    p = home.pingch("--tail", str(log), "-n", "3", "sh", "-c", f"seq 1 100 > {shlex.quote(str(log))}")
    assert p.returncode == 0
    finish = only(home, "finish")
    assert finish["tail"] == "98\n99\n100"
    assert finish["tail_file"] == str(log)
    assert "tail" not in only(home, "start")


def test_tail_defaults_to_ten_lines(home: Home, tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    log.write_text("".join(f"line {i}\n" for i in range(1, 31)))
    home.pingch("--tail", str(log), "true")
    assert only(home, "finish")["tail"].split("\n") == [f"line {i}" for i in range(21, 31)]


def test_tail_file_is_recorded_as_given_and_read_from_the_jobs_directory(
        home: Home, tmp_path: Path) -> None:
    (tmp_path / "out.log").write_text("done\n")
    home.pingch("--tail", "out.log", "true", cwd=tmp_path)
    finish = only(home, "finish")
    assert finish["tail_file"] == "out.log"
    assert finish["tail"] == "done"


def test_tail_of_a_shorter_file_gives_all_its_lines(home: Home, tmp_path: Path) -> None:
    log = tmp_path / "short.log"
    log.write_text("one\ntwo")  # no newline after the last line
    home.pingch("--tail", str(log), "true")
    assert only(home, "finish")["tail"] == "one\ntwo"


def test_tail_of_a_1gb_sparse_file_gives_the_lines_at_its_end(home: Home, tmp_path: Path) -> None:
    big = sparse_file_with_lines(tmp_path / "big.log", 1 << 30, ["first", "second", "third"])
    p = home.pingch("--tail", str(big), "-n", "5", "true")
    assert p.returncode == 0
    assert only(home, "finish")["tail"] == "first\nsecond\nthird"


def test_tail_lines_are_cut_at_300_characters(home: Home, tmp_path: Path) -> None:
    log = tmp_path / "wide.log"
    log.write_text("x" * 1000 + "\nshort\n")
    home.pingch("--tail", str(log), "true")
    wide, short = only(home, "finish")["tail"].split("\n")
    assert len(wide) == 300
    assert wide.startswith("x" * 299)
    assert short == "short"


def test_tail_of_fifty_long_lines_keeps_the_newest_within_the_field_limit(
        home: Home, tmp_path: Path) -> None:
    log = tmp_path / "wide.log"
    log.write_text("".join(f"{i:02d}" + "y" * 400 + "\n" for i in range(60)))
    home.pingch("--tail", str(log), "-n", "50", "true")
    tail = only(home, "finish")["tail"]
    assert len(tail) <= events.FIELD_LIMITS["tail"]
    assert tail.split("\n")[-1].startswith("59yyy")
    assert not tail.endswith(events.TRUNCATED)


def test_tail_shows_a_progress_bar_line_as_the_terminal_shows_it(home: Home, tmp_path: Path) -> None:
    log = tmp_path / "bar.log"
    log.write_bytes(b"epoch 1\r\n 10%\r 50%\r100%\n")
    home.pingch("--tail", str(log), "true")
    assert only(home, "finish")["tail"] == "epoch 1\n100%"


def test_tail_replaces_bytes_that_are_not_utf8(home: Home, tmp_path: Path) -> None:
    log = tmp_path / "bin.log"
    log.write_bytes(b"ok \xff\xfe end\n")
    home.pingch("--tail", str(log), "true")
    assert only(home, "finish")["tail"] == "ok \ufffd\ufffd end"


def test_missing_tail_file_is_noted_and_the_exit_status_is_the_jobs(home: Home, tmp_path: Path) -> None:
    missing = tmp_path / "never-written.log"
    p = home.pingch("--tail", str(missing), "sh", "-c", "exit 4")
    assert p.returncode == 4
    finish = only(home, "finish")
    assert finish["exit"] == 4
    assert finish["tail"] == f"(cannot read {missing}: No such file or directory)"


def test_tail_of_a_fifo_is_refused_without_blocking_the_jobs_end(home: Home, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    p = home.pingch("--tail", str(fifo), "true", timeout=30)
    assert p.returncode == 0
    assert only(home, "finish")["tail"] == f"(cannot read {fifo}: not a regular file)"


@pytest.mark.parametrize("lines", ["0", "51", "ten", "-1", "５"])
def test_tail_line_count_outside_1_to_50_is_a_usage_error(home: Home, tmp_path: Path, lines: str) -> None:
    usage_error(home.pingch("--tail", str(tmp_path / "x"), "-n", lines, "true"), home,
                "number of lines from 1 to 50")


def test_line_count_without_tail_is_a_usage_error(home: Home) -> None:
    usage_error(home.pingch("-n", "5", "true"), home, "-n/--lines goes with --tail")


def sparse_file_with_lines(path: Path, size: int, lines: list[str]) -> Path:
    """A file of `size` bytes of holes (no disk used) ending in `lines`."""
    with path.open("wb") as f:
        os.truncate(f.fileno(), size)
        f.seek(size)
        f.write(("\n" + "\n".join(lines) + "\n").encode())
    return path


def count_pread(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Wrap os.pread; the returned list collects the size of every read."""
    sizes: list[int] = []
    real = os.pread

    def counting(fd: int, n: int, offset: int) -> bytes:
        data = real(fd, n, offset)
        sizes.append(len(data))
        return data

    monkeypatch.setattr(os, "pread", counting)
    return sizes


def test_reading_the_tail_of_a_1gb_file_reads_under_100kb(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = sparse_file_with_lines(tmp_path / "big.log", 1 << 30, ["first", "second", "third"])
    sizes = count_pread(monkeypatch)
    assert facts.read_tail(str(big), 10) == "first\nsecond\nthird"
    assert 0 < sum(sizes) < 100_000


def test_reading_the_tail_of_a_1gb_file_without_newlines_reads_under_100kb(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "holes.bin"
    with big.open("wb") as f:
        os.truncate(f.fileno(), 1 << 30)
    sizes = count_pread(monkeypatch)
    tail = facts.read_tail(str(big), 50)
    assert 0 < sum(sizes) < 100_000
    assert len(tail) == 300  # the end of the one endless line, cut like any other
    assert tail.startswith("…")


# -- --attach FILE ----------------------------------------------------------------------
def test_attach_gives_the_absolute_path_in_the_finish_event(home: Home, tmp_path: Path) -> None:
    (tmp_path / "plot.png").write_bytes(b"\x89PNG")
    home.pingch("--attach", "plot.png", "true", cwd=tmp_path)
    start, finish = start_and_finish(home)
    assert finish["attach"] == str(tmp_path / "plot.png")
    assert "attach_error" not in finish
    assert "attach" not in start


def test_attach_is_checked_at_the_jobs_end_so_the_job_may_create_it(home: Home, tmp_path: Path) -> None:
    home.pingch("--attach", "result.txt", "sh", "-c", "echo 42 > result.txt", cwd=tmp_path)
    assert only(home, "finish")["attach"] == str(tmp_path / "result.txt")


def test_missing_attachment_is_explained_and_the_exit_status_is_unchanged(
        home: Home, tmp_path: Path) -> None:
    p = home.pingch("--attach", "missing.png", "true", cwd=tmp_path)
    assert p.returncode == 0
    finish = only(home, "finish")
    assert "attach" not in finish
    assert finish["exit"] == 0
    assert finish["attach_error"] == (f"cannot attach {tmp_path / 'missing.png'}: "
                                      "No such file or directory")


def test_directory_as_attachment_is_explained(home: Home, tmp_path: Path) -> None:
    home.pingch("--attach", str(tmp_path), "true")
    finish = only(home, "finish")
    assert "attach" not in finish
    assert finish["attach_error"].endswith("not a regular file")


# -- --hide-command -----------------------------------------------------------------------
def test_hide_command_leaves_cmd_empty_in_both_events(home: Home) -> None:
    home.pingch("--hide-command", PY, "-c", "pass", "--api-key=s3cret")
    start, finish = start_and_finish(home)
    for ev in (start, finish):
        assert ev["cmd"] == ""
        assert ev["hide_command"] is True
        assert "s3cret" not in str(ev)


def test_hide_command_leaves_the_working_directory_out_of_both_events(home: Home, tmp_path: Path) -> None:
    secret = tmp_path / "secret-project"
    secret.mkdir()
    home.pingch("--hide-command", "true", cwd=secret)
    start, finish = start_and_finish(home)
    assert start["cwd"] == finish["cwd"] == ""
    assert "secret-project" not in str(home.events())


def test_hide_command_names_a_missing_attachment_by_its_file_name(home: Home, tmp_path: Path) -> None:
    home.pingch("--hide-command", "--attach", str(tmp_path / "secret-project" / "plot.png"), "true")
    finish = only(home, "finish")
    assert finish["attach_error"].startswith("cannot attach plot.png: ")
    assert "secret-project" not in str(finish)


def test_hide_command_title_is_the_programs_base_name(home: Home) -> None:
    home.pingch("--hide-command", PY, "-c", "pass")
    assert only(home, "start")["title"] == os.path.basename(PY)


def test_hide_command_title_of_a_shell_snippet_is_bash(home: Home) -> None:
    home.pingch("--hide-command", "echo s3cret > /dev/null")
    start = only(home, "start")
    assert start["title"] == "bash"
    assert "s3cret" not in str(home.events())


def test_hide_command_keeps_a_title_given_with_t(home: Home) -> None:
    home.pingch("--hide-command", "-t", "relax", "true")
    assert only(home, "start")["title"] == "relax"


def test_hide_command_still_sends_the_tail_asked_for(home: Home, tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    log.write_text("converged\n")
    home.pingch("--hide-command", "--tail", str(log), "true")
    assert only(home, "finish")["tail"] == "converged"


def test_hide_command_keeps_the_arguments_out_of_a_not_found_error(home: Home, tmp_path: Path) -> None:
    home.pingch("--hide-command", str(tmp_path / "secret-dir" / "no-such-tool"), "--token=s3cret")
    finish = only(home, "finish")
    assert finish["exit"] == 127
    assert finish["error"] == "no-such-tool: command not found"
    assert "s3cret" not in str(finish)
    assert "secret-dir" not in str(finish)


def test_job_without_hide_command_has_no_hide_command_field(home: Home) -> None:
    home.pingch("true")
    assert "hide_command" not in only(home, "finish")


# -- node memory, cores, OOM ------------------------------------------------------------------
def mem_total_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    raise AssertionError("no MemTotal in /proc/meminfo")


def test_finish_carries_the_nodes_total_memory(home: Home) -> None:
    home.pingch("true")
    start, finish = start_and_finish(home)
    assert finish["mem_total_kb"] == mem_total_kb()
    assert "mem_total_kb" not in start


@pytest.mark.parametrize(
    ("env", "cores"),
    [
        ({"OMP_NUM_THREADS": "8"}, 8),
        ({"SLURM_CPUS_PER_TASK": "4"}, 4),
        ({"NSLOTS": "2"}, 2),
        ({"OMP_NUM_THREADS": "8", "SLURM_CPUS_PER_TASK": "4"}, 8),
        ({"OMP_NUM_THREADS": "4,2", "SLURM_CPUS_PER_TASK": "16"}, 16),
    ],
    ids=["omp", "slurm", "sge", "omp-first", "omp-not-an-int"],
)
def test_cores_come_from_the_jobs_environment(home: Home, env: dict[str, str], cores: int) -> None:
    subprocess.run([str(BIN / "pingch"), "true"], env={**home.env, **env}, check=True, timeout=60)
    assert only(home, "finish")["cores"] == cores


@pytest.mark.parametrize("value", ["0", "-2", "many", ""])
def test_cores_are_omitted_unless_a_positive_integer(home: Home, value: str) -> None:
    env = {k: v for k, v in home.env.items() if k not in facts.CORES_VARS}
    subprocess.run([str(BIN / "pingch"), "true"], env={**env, "OMP_NUM_THREADS": value}, check=True,
                   timeout=60)
    assert "cores" not in only(home, "finish")


def test_job_killed_by_sigkill_without_an_oom_record_has_no_oom_field(home: Home) -> None:
    home.pingch("sh", "-c", "kill -9 $$")
    finish = only(home, "finish")
    assert finish["signal"] == 9
    assert "oom" not in finish


def kmsg_file(path: Path, *records: tuple[float, str]) -> str:
    """A stand-in for /dev/kmsg: records as `prio,seq,usec,flags;text` (Documentation/ABI)."""
    path.write_text("".join(f"6,{seq},{int(t * 1_000_000)},-;{text}\n"
                            for seq, (t, text) in enumerate(records)))
    return str(path)


def test_oom_killer_line_naming_the_pid_says_oom(tmp_path: Path) -> None:
    now = time.monotonic()
    log = kmsg_file(tmp_path / "kmsg",
                    (now + 1, "python invoked oom-killer: gfp_mask=0x140cca, order=0"),
                    (now + 1, "Out of memory: Killed process 4242 (python) total-vm:9000kB"))
    assert facts.oom_killed(4242, now, log) is True


def test_oom_kill_summary_line_naming_the_pid_says_oom(tmp_path: Path) -> None:
    now = time.monotonic()
    log = kmsg_file(tmp_path / "kmsg", (now + 1, "oom-kill:constraint=CONSTRAINT_MEMCG,"
                                                 "task_memcg=/slurm/job7,task=relax,pid=4242,uid=1000"))
    assert facts.oom_killed(4242, now, log) is True


def test_oom_line_for_another_pid_does_not_say_oom(tmp_path: Path) -> None:
    now = time.monotonic()
    log = kmsg_file(tmp_path / "kmsg", (now + 1, "Out of memory: Killed process 42420 (python)"),
                    (now + 1, "oom-kill:task=relax,pid=14242,uid=1000"))
    assert facts.oom_killed(4242, now, log) is False


def test_oom_line_from_before_the_job_started_does_not_say_oom(tmp_path: Path) -> None:
    now = time.monotonic()
    log = kmsg_file(tmp_path / "kmsg", (now - 3600, "Out of memory: Killed process 4242 (old)"))
    assert facts.oom_killed(4242, now, log) is False


def test_kernel_log_is_read_no_further_than_1mb(tmp_path: Path) -> None:
    now = time.monotonic()
    noise = [(now + 1, "e1000e: eth0 NIC Link is Up " + "x" * 200)] * 6000  # ~1.4 MB
    log = kmsg_file(tmp_path / "kmsg", *noise, (now + 1, "Out of memory: Killed process 4242 (py)"))
    assert os.path.getsize(log) > facts.KMSG_READ_MAX
    assert facts.oom_killed(4242, now, log) is False


def test_unreadable_kernel_log_does_not_say_oom(tmp_path: Path) -> None:
    assert facts.oom_killed(4242, time.monotonic(), str(tmp_path / "no-kmsg")) is False


def test_reading_the_real_kernel_log_never_blocks() -> None:
    # Readable or not (dmesg_restrict), this must return: O_NONBLOCK ends the read at EAGAIN.
    assert facts.oom_killed(os.getpid(), time.monotonic()) is False


# -- pingch -p with the options -------------------------------------------------------------
def test_watched_process_gets_group_hidden_command_and_cores(home: Home) -> None:
    sleeper = subprocess.Popen(["sleep", "1.5"], env={**home.env, "SLURM_CPUS_PER_TASK": "6"})
    try:
        p = home.pingch("-p", str(sleeper.pid), "-g", "old", "--hide-command")
        assert p.returncode == 0, p.stderr
    finally:
        sleeper.kill()
        sleeper.wait()
    start, finish = start_and_finish(home)
    assert start["group"] == finish["group"] == "old"
    assert start["cmd"] == finish["cmd"] == ""
    assert start["title"] == "sleep"
    assert finish["cores"] == 6


# -- -d/--detach [-o FILE] ----------------------------------------------------------------
def test_detached_job_survives_the_hangup_of_its_shell(
        home: Home, session_leaders: list[subprocess.Popen[str]]) -> None:
    job = shlex.quote("echo out; echo err >&2; sleep 3")
    shell = subprocess.Popen(["bash", "-c", f"pingch -d -t det sh -c {job}; sleep 60"],
                             env=path_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    session_leaders.append(shell)
    start = wait_for(home, "start")
    assert by_kind(home, "finish") == []  # still running when the terminal goes
    os.killpg(shell.pid, signal.SIGHUP)
    out, err = shell.communicate(timeout=20)
    assert shell.returncode == -signal.SIGHUP  # the shell itself was hung up

    finish = wait_for(home, "finish", timeout=30)
    assert finish["exit"] == 0
    assert finish["signal"] is None
    assert finish["detached"] is True
    assert start["detached"] is True
    assert finish["title"] == "det"
    assert out == f"{finish['job']}\n"
    assert err == f"pingch: started {finish['job']} in the background; output in {finish['log']}\n"
    assert Path(finish["log"]).read_text() == "out\nerr\n"


def test_job_in_the_foreground_dies_with_the_hangup_of_its_shell(
        home: Home, session_leaders: list[subprocess.Popen[str]]) -> None:
    shell = subprocess.Popen(["bash", "-c", "pingch sleep 60; sleep 60"], env=path_env(home),
                             text=True, start_new_session=True)
    session_leaders.append(shell)
    wait_for(home, "start")
    os.killpg(shell.pid, signal.SIGHUP)
    shell.wait(timeout=20)
    finish = wait_for(home, "finish")
    assert finish["signal"] == signal.SIGHUP
    assert finish["exit"] is None
    assert "detached" not in finish


def test_detach_returns_before_the_job_ends_printing_its_job_id(home: Home, tmp_path: Path) -> None:
    go = tmp_path / "go"
    p = home.pingch("-d", "sh", "-c", f"until [ -e {shlex.quote(str(go))} ]; do sleep 0.05; done",
                    timeout=30)
    assert p.returncode == 0, p.stderr
    job = p.stdout.strip()
    assert p.stdout == f"{job}\n"
    assert job.startswith(f"{home.host}-")
    assert wait_for(home, "start")["job"] == job
    assert by_kind(home, "finish") == []  # the job waits for `go`: pingch did not
    go.touch()
    finish = wait_for(home, "finish")
    assert finish["job"] == job
    assert finish["exit"] == 0


def test_a_detached_jobs_pingch_shows_in_ps_as_pingch_d_and_the_command(home: Home, tmp_path: Path) -> None:
    go = tmp_path / "go"
    wait_loop = f"until [ -e {shlex.quote(str(go))} ]; do sleep 0.05; done"
    assert home.pingch("-d", "-t", "named", "sh", "-c", wait_loop).returncode == 0
    try:
        job_pid = wait_for(home, "start")["pid"]
        stat_fields = Path(f"/proc/{job_pid}/stat").read_text().rsplit(")", 1)[1].split()
        inner = int(stat_fields[1])  # the job's parent: its pingch
        argv = Path(f"/proc/{inner}/cmdline").read_bytes().split(b"\0")[:-1]
        assert [os.fsdecode(a) for a in argv[1:]] == [
            str(BIN / "pingch"), "-d", "-t", "named", "sh", "-c", wait_loop]
        shown = subprocess.run(["ps", "-ww", "-o", "args=", "-p", str(inner)], capture_output=True, text=True)
        assert "/pingch -d -t named sh -c until" in shown.stdout
        assert Path(f"/proc/{inner}/comm").read_text() == "pingch\n"  # what top shows
    finally:
        go.touch()
    assert wait_for(home, "finish")["exit"] == 0


def test_a_detached_command_that_starts_with_a_dash_is_run_as_the_command(home: Home) -> None:
    p = home.pingch("-d", "--", "-no-such-program")
    assert p.returncode == 0, p.stderr
    finish = wait_for(home, "finish")
    assert finish["exit"] == 127 and "-no-such-program" in finish["error"]


def test_detached_output_goes_to_a_private_joblog_by_default(home: Home) -> None:
    p = home.pingch("-d", "sh", "-c", "echo hello; echo oops >&2")
    job = p.stdout.strip()
    finish = wait_for(home, "finish")
    log = home.state_dir / "joblogs" / f"{job}.log"
    assert finish["log"] == str(log)
    assert log.read_text() == "hello\noops\n"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700


def test_detached_output_is_appended_to_the_file_given_with_o(home: Home, tmp_path: Path) -> None:
    out = tmp_path / "run.out"
    out.write_text("earlier\n")
    p = home.pingch("-d", "-o", "run.out", "echo", "later", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    finish = wait_for(home, "finish")
    assert finish["log"] == str(out)
    assert finish["detached"] is True
    assert out.read_text() == "earlier\nlater\n"


def test_detached_job_reads_dev_null_and_keeps_sighup_ignored(home: Home, tmp_path: Path) -> None:
    out = tmp_path / "run.out"
    home.pingch("-d", "-o", str(out), "sh", "-c", "readlink /proc/self/fd/0; grep SigIgn /proc/self/status")
    wait_for(home, "finish")
    stdin, sigign = out.read_text().splitlines()
    assert stdin == "/dev/null"
    assert int(sigign.split()[1], 16) & (1 << (signal.SIGHUP - 1))


def test_pingch_inside_a_detached_job_is_a_job_of_its_own(home: Home, tmp_path: Path) -> None:
    out = tmp_path / "run.out"
    home.pingch("-d", "-o", str(out), "-t", "outer", "sh", "-c",
                f"env; {shlex.quote(str(BIN / 'pingch'))} -t inner true")
    wait_until(lambda: len(by_kind(home, "finish")) == 2, 20, "both finish events")
    finishes = {ev["title"]: ev for ev in by_kind(home, "finish")}
    assert finishes["outer"]["job"] != finishes["inner"]["job"]
    assert "detached" not in finishes["inner"]
    assert options.ENV_JOB_ID not in out.read_text()


def test_detach_with_an_output_file_that_cannot_be_opened_fails_without_running(
        home: Home, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    p = home.pingch("-d", "-o", str(tmp_path / "no-dir" / "out"), "touch", str(marker))
    assert p.returncode == 1
    assert "cannot open" in p.stderr
    assert "Traceback" not in p.stderr
    assert home.events() == []
    assert not marker.exists()


def test_output_without_detach_is_a_usage_error(home: Home, tmp_path: Path) -> None:
    usage_error(home.pingch("-o", str(tmp_path / "out"), "true"), home, "-o/--output goes with -d")


def test_detach_with_a_pid_is_a_usage_error(home: Home) -> None:
    usage_error(home.pingch("-d", "-p", str(os.getpid())), home, "cannot follow a running -p PID")


# -- usage ----------------------------------------------------------------------------------
def test_help_lists_every_option(home: Home) -> None:
    p = home.pingch("-h")
    assert p.returncode == 0
    for option in ("--title", "--group", "--notify", "--tail", "--lines", "--attach",
                   "--hide-command", "--detach", "--output", "--pid", "--help"):
        assert option in p.stdout


def test_every_help_line_fits_80_columns(home: Home) -> None:
    p = home.pingch("--help")
    assert p.returncode == 0
    assert [line for line in p.stdout.splitlines() if len(line) > 80] == []


def test_pid_beyond_the_systems_pid_max_is_a_usage_error(home: Home) -> None:
    usage_error(home.pingch("-p", "99999999"), home, f"from 1 to {options.pid_max()}")


@pytest.mark.parametrize("option", ["-g", "--notify", "--tail", "-n", "--attach", "-o"])
def test_option_without_its_value_is_a_usage_error(home: Home, option: str) -> None:
    usage_error(home.pingch(option), home, f"{option} needs a value")


def test_flag_given_a_value_is_an_unknown_option(home: Home) -> None:
    usage_error(home.pingch("--hide-command=yes", "true"), home, "unknown option '--hide-command=yes'")
