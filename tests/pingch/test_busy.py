"""pingch's one line on a busy node (pingch/facts.py): when it is said, once, and that the job never minds.

The node's files come from a crafted /proc-like directory (NOTIFYD_TEST_PROC_ROOT);
the cores are this machine's (os.cpu_count()), so loads are set against them.
Real pingch processes for what the user sees, the rules in memory.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from harness import PINGCH, Home, WatcherProc, by_kind, wait_until

from notifyd import procfs
from notifyd.pingch import facts

CORES = os.cpu_count() or 1
TOTAL_KB = 16_000_000
MARK = " is busy: "


def crafted_proc(root: Path, *, free_pct: float = 60.0, load: float = 0.1) -> Path:
    """A /proc-like directory with a meminfo and a loadavg as the kernel writes them."""
    root.mkdir(parents=True, exist_ok=True)
    avail = int(TOTAL_KB * free_pct / 100)
    (root / "meminfo").write_text(f"MemTotal:       {TOTAL_KB} kB\nMemFree:         {avail // 2} kB\n"
                                  f"MemAvailable:   {avail} kB\nBuffers:          1024 kB\n"
                                  "SwapTotal:       2097148 kB\nSwapFree:        1048576 kB\n")
    (root / "loadavg").write_text(f"{load:.2f} 0.50 0.40 3/912 123456\n")
    return root


def on_node(home: Home, proc: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """pingch ARGS on a node whose files are in `proc`, with `extra` in its environment."""
    env = {**home.env, facts.ENV_PROC: str(proc), **extra}
    return subprocess.run([PINGCH, *args], env=env, capture_output=True, text=True, timeout=60)


def busy_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if MARK in line]


# -- what the user sees ---------------------------------------------------------------------------
def test_a_job_started_on_a_node_short_of_memory_gets_one_line_and_runs(home: Home, tmp_path: Path) -> None:
    proc = crafted_proc(tmp_path / "proc", free_pct=6)
    p = on_node(home, proc, "true")
    assert p.returncode == 0
    assert busy_lines(p.stderr) == [f"pingch: {home.host} is busy: load 0.1/{CORES} cores, 6 % mem free; "
                                    "notifyd nodes --free"]
    assert len(by_kind(home, "finish")) == 1


def test_a_job_started_on_an_overloaded_node_is_told_its_load_and_cores(home: Home, tmp_path: Path) -> None:
    proc = crafted_proc(tmp_path / "proc", load=1.5 * CORES + 0.5)
    p = on_node(home, proc, "true")
    assert p.returncode == 0
    [line] = busy_lines(p.stderr)
    assert f"load {1.5 * CORES + 0.5:.1f}/{CORES} cores, 60 % mem free" in line


def test_the_line_fits_80_columns_for_a_usual_host_name(home: Home, tmp_path: Path) -> None:
    proc = crafted_proc(tmp_path / "proc", free_pct=2.5, load=99.99)
    p = on_node(home, proc, "true", NOTIFYD_HOST="gpu-ws12")
    [line] = busy_lines(p.stderr)
    assert line.startswith("pingch: gpu-ws12 is busy: ") and len(line) <= 80, line


def test_a_job_on_a_node_with_room_gets_no_line(home: Home, tmp_path: Path) -> None:
    proc = crafted_proc(tmp_path / "proc", free_pct=11, load=1.5 * CORES)
    p = on_node(home, proc, "true")
    assert p.returncode == 0 and busy_lines(p.stderr) == [], p.stderr


def test_on_a_busy_node_the_jobs_exit_status_and_output_are_unchanged(home: Home, tmp_path: Path) -> None:
    proc = crafted_proc(tmp_path / "proc", free_pct=3, load=10 * CORES)
    p = on_node(home, proc, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert p.returncode == 3
    assert p.stdout == "out\n"
    assert sorted(p.stderr.splitlines()) == sorted(["err", *busy_lines(p.stderr)])
    assert len(busy_lines(p.stderr)) == 1


def test_a_detached_job_is_told_once_by_the_pingch_that_returns_and_not_in_its_log(
        home: Home, tmp_path: Path) -> None:
    proc = crafted_proc(tmp_path / "proc", free_pct=3)
    log = tmp_path / "job.log"
    p = on_node(home, proc, "-d", "-o", str(log), "sh", "-c", "echo done")
    assert p.returncode == 0
    assert len(busy_lines(p.stderr)) == 1
    wait_until(lambda: by_kind(home, "finish"), 20, "the detached job's end")
    assert log.read_text() == "done\n"


GARBLED = {
    "missing": None,
    "empty": ("", ""),
    "garbage": ("MemTotal: lots kB\nMemAvailable: -5 kB\n", "high 1 1 1/1 1\n"),
    "nan": ("MemTotal: nan kB\nMemAvailable: inf kB\n", "nan nan nan 1/1 1\n"),
    "binary": ("\udcff\x00\x01MemTotal:\x00", "\udcfe\x00"),
    "zero total": ("MemTotal: 0 kB\nMemAvailable: 0 kB\n", "0.00 0 0 1/1 1\n"),
    "huge": (f"MemTotal: {'9' * 40} kB\nMemAvailable: 1 kB\n", f"{'9' * 40}.0 1 1 1/1 1\n"),
    "directories": "dirs",
    "fifos": "fifo",  # never opened for long: a read of one would wait for a writer
    "unreadable": "chmod",
    "dangling symlinks": "dangling",
}


@pytest.mark.parametrize("case", GARBLED, ids=list(GARBLED))
def test_unreadable_or_garbled_node_files_give_no_line_and_the_job_runs(
        home: Home, tmp_path: Path, case: str) -> None:
    proc = tmp_path / "proc"
    made = GARBLED[case]
    if isinstance(made, tuple):
        proc.mkdir()
        (proc / "meminfo").write_bytes(made[0].encode("utf-8", "surrogateescape"))
        (proc / "loadavg").write_bytes(made[1].encode("utf-8", "surrogateescape"))
    elif made == "dirs":
        (proc / "meminfo").mkdir(parents=True)
        (proc / "loadavg").mkdir()
    elif made == "fifo":
        proc.mkdir()
        os.mkfifo(proc / "meminfo")
        os.mkfifo(proc / "loadavg")
    elif made == "chmod":
        crafted_proc(proc, free_pct=1, load=100 * CORES)
        for f in ("meminfo", "loadavg"):
            (proc / f).chmod(0)
        if os.access(proc / "meminfo", os.R_OK):
            # As root (CI) a mode of 0 does not stop the read: what is read is
            # then a busy node, so the line is right; "dangling symlinks" and
            # "dirs" are the unreadable cases for every user.
            p = on_node(home, proc, "sh", "-c", "echo ran; exit 4")
            assert (p.returncode, p.stdout) == (4, "ran\n") and len(busy_lines(p.stderr)) == 1
            return
    elif made == "dangling":
        proc.mkdir()
        for f in ("meminfo", "loadavg"):
            (proc / f).symlink_to(proc / f"gone-{f}")
    p = on_node(home, proc, "sh", "-c", "echo ran; exit 4")
    assert (p.returncode, p.stdout) == (4, "ran\n")
    assert busy_lines(p.stderr) == [] and "Traceback" not in p.stderr, p.stderr


# -- turned off ---------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["0", "no", "off"])
def test_the_line_is_off_in_a_shell_with_NOTIFYD_BUSY_WARNING_0(home: Home, tmp_path: Path,
                                                                 value: str) -> None:
    proc = crafted_proc(tmp_path / "proc", free_pct=1, load=100 * CORES)
    p = on_node(home, proc, "true", NOTIFYD_BUSY_WARNING=value)
    assert p.returncode == 0 and busy_lines(p.stderr) == [], p.stderr


def _settings_written(home: Home) -> str:
    path = home.state_dir / facts.SETTINGS_FILE
    return path.read_text() if path.exists() else ""


def test_start_warning_no_in_the_config_turns_the_line_off_through_the_watcher(
        home: Home, tmp_path: Path) -> None:
    home.write_config("[pressure]\nstart_warning = no\n")
    w = WatcherProc(home).start()
    try:
        assert wait_until(lambda: _settings_written(home), 10, "pingch.conf") == \
            "start_warning=no\nwarn_mem=10\n"
        proc = crafted_proc(tmp_path / "proc", free_pct=1, load=100 * CORES)
        p = on_node(home, proc, "true")
    finally:
        w.stop()
    assert p.returncode == 0 and busy_lines(p.stderr) == [], p.stderr


def test_warn_mem_of_the_config_reaches_pingch_through_the_watcher(home: Home, tmp_path: Path) -> None:
    proc = crafted_proc(tmp_path / "proc", free_pct=40)  # room enough by the default of 10 %
    home.write_config("[pressure]\nwarn_mem = 50 %\n")
    w = WatcherProc(home).start()
    try:
        wait_until(lambda: "warn_mem=50\n" in _settings_written(home), 10, "pingch.conf")
        p = on_node(home, proc, "true")
    finally:
        w.stop()
    assert [line.split("busy: ")[1] for line in busy_lines(p.stderr)] == [
        f"load 0.1/{CORES} cores, 40 % mem free; notifyd nodes --free"]


def test_the_watcher_rewrites_the_settings_when_the_config_changes(home: Home) -> None:
    home.write_config("[watcher]\npoll_interval = 0.2s\nlease_timeout = 5s\n")
    w = WatcherProc(home).start()
    try:
        wait_until(lambda: _settings_written(home) == "start_warning=yes\nwarn_mem=10\n", 10, "pingch.conf")
        home.write_config("[watcher]\npoll_interval = 0.2s\nlease_timeout = 5s\n"
                          "[pressure]\nstart_warning = off\nwarn_mem = 7.5\n")
        wait_until(lambda: _settings_written(home) == "start_warning=no\nwarn_mem=7.5\n", 10,
                   "pingch.conf after the reload")
    finally:
        w.stop()
    assert stat.S_IMODE((home.state_dir / facts.SETTINGS_FILE).stat().st_mode) == 0o600


# -- the rules, in memory ---------------------------------------------------------------------------
FIGS = {"mem_total_kb": 1000, "mem_avail_kb": 100, "load1": 24.0, "cores": 16}


def test_memory_at_exactly_warn_mem_or_load_at_exactly_one_and_a_half_cores_is_not_busy() -> None:
    assert facts.busy_line("n", FIGS, 10.0) == ""
    assert facts.busy_line("n", {**FIGS, "mem_avail_kb": 99}, 10.0) != ""
    assert facts.busy_line("n", {**FIGS, "load1": 24.01}, 10.0) != ""


def test_a_figure_that_could_not_be_read_judges_nothing_and_is_not_shown() -> None:
    no_load = {"mem_total_kb": 1000, "mem_avail_kb": 4, "cores": 16}
    assert facts.busy_line("n", no_load, 10.0) == "pingch: n is busy: 0.4 % mem free; notifyd nodes --free\n"
    no_memory = {"load1": 40.0, "cores": 16}
    assert facts.busy_line("n", no_memory, 10.0) == \
        "pingch: n is busy: load 40.0/16 cores; notifyd nodes --free\n"
    assert facts.busy_line("n", {"mem_avail_kb": 0, "load1": 40.0}, 10.0) == ""
    assert facts.busy_line("n", {}, 10.0) == ""


def test_settings_written_by_the_watcher_read_back(tmp_path: Path) -> None:
    facts.write_settings(str(tmp_path), False, 12.5)
    assert facts.read_settings(str(tmp_path)) == (False, 12.5)
    assert [p.name for p in tmp_path.iterdir()] == [facts.SETTINGS_FILE]  # no temp file left


@pytest.mark.parametrize("text", ["", "garbage\n\x00\xff", "start_warning=maybe\nwarn_mem=150\n",
                                  "warn_mem=-3\nwarn_mem=nan\n", "start_warning = no\n", "warn_mem=1e3\n"])
def test_settings_that_say_nothing_sane_give_the_defaults(tmp_path: Path, text: str) -> None:
    (tmp_path / facts.SETTINGS_FILE).write_bytes(text.encode("utf-8", "surrogateescape"))
    assert facts.read_settings(str(tmp_path)) == (True, facts.DEFAULT_WARN_MEM)


def test_without_a_settings_file_or_a_state_dir_the_defaults_apply(tmp_path: Path) -> None:
    assert facts.read_settings(str(tmp_path)) == facts.read_settings("") == (True, facts.DEFAULT_WARN_MEM)


def test_the_nodes_figures_are_read_from_meminfo_and_loadavg(tmp_path: Path) -> None:
    proc = crafted_proc(tmp_path, free_pct=25, load=3.25)
    assert procfs.node_figures(str(proc)) == {
        "mem_total_kb": TOTAL_KB, "mem_avail_kb": TOTAL_KB // 4, "swap_total_kb": 2097148,
        "swap_free_kb": 1048576, "load1": 3.25, "cores": CORES}


def test_a_figure_missing_from_the_nodes_files_is_left_out_not_made_zero(tmp_path: Path) -> None:
    (tmp_path / "meminfo").write_text("MemTotal: 1000 kB\nMemFree: 10 kB\n")  # a kernel before 3.14
    assert procfs.node_figures(str(tmp_path)) == {"mem_total_kb": 1000, "cores": CORES}
