"""The liveness mark alive/<host> (spool/alive.py): the node's figures in a line, its mtime the sign of life.

pingch's own mark is written by HostRecorder.mark_alive, here called in
process on a crafted /proc-like directory (a real pingch writes it only
after a minute of its job); the watcher's side reads it with parse_alive
and lost.py keeps timing the host by its mtime.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from notifyd.pingch.record import HostRecorder
from notifyd.spool import alive
from notifyd.watcher import lost

CORES = os.cpu_count() or 1
MEMINFO = ("MemTotal:       16318712 kB\nMemFree:          811232 kB\nMemAvailable:    1032512 kB\n"
           "SwapCached:        12288 kB\nSwapTotal:       2097148 kB\nSwapFree:              0 kB\n")


@pytest.fixture
def recorder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HostRecorder:
    monkeypatch.setenv("NOTIFYD_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("NOTIFYD_HOST", "node3")
    return HostRecorder()


def proc_with(root: Path, meminfo: str | None, loadavg: str | None) -> str:
    root.mkdir()
    if meminfo is not None:
        (root / "meminfo").write_text(meminfo)
    if loadavg is not None:
        (root / "loadavg").write_text(loadavg)
    return str(root)


def test_the_mark_is_one_line_of_the_nodes_memory_swap_load_and_cores(recorder: HostRecorder,
                                                                       tmp_path: Path) -> None:
    recorder.mark_alive(proc_with(tmp_path / "proc", MEMINFO, "31.80 30.02 28.11 40/1200 99999\n"))
    text = (tmp_path / "state" / "alive" / "node3").read_text()
    assert text == ("mem_total_kb=16318712 mem_avail_kb=1032512 swap_total_kb=2097148 swap_free_kb=0 "
                    f"load1=31.80 cores={CORES}\n")
    assert alive.parse_alive(text) == {"mem_total_kb": 16318712, "mem_avail_kb": 1032512,
                                       "swap_total_kb": 2097148, "swap_free_kb": 0, "load1": 31.8,
                                       "cores": CORES}


def test_a_figure_whose_source_cannot_be_read_is_left_out_of_the_mark(recorder: HostRecorder,
                                                                      tmp_path: Path) -> None:
    recorder.mark_alive(proc_with(tmp_path / "proc", "MemTotal: 1000 kB\nMemAvailable: 50 kB\n", None))
    text = (tmp_path / "state" / "alive" / "node3").read_text()
    assert text == f"mem_total_kb=1000 mem_avail_kb=50 cores={CORES}\n"


def test_the_real_nodes_mark_has_every_key_this_kernel_gives(recorder: HostRecorder, tmp_path: Path) -> None:
    recorder.mark_alive()
    found = alive.parse_alive((tmp_path / "state" / "alive" / "node3").read_text())
    assert {"mem_total_kb", "mem_avail_kb", "swap_total_kb", "swap_free_kb", "load1", "cores"} == set(found)
    assert 0 <= found["mem_avail_kb"] <= found["mem_total_kb"]


def test_the_mark_still_times_the_hosts_last_sign_of_life(recorder: HostRecorder, tmp_path: Path) -> None:
    recorder.mark_alive(proc_with(tmp_path / "proc", MEMINFO, "1.00 1 1 1/1 1\n"))
    alive_dir = tmp_path / "state" / "alive"
    events_dir = str(tmp_path / "events")
    os.utime(alive_dir / "node3", (1_000_000, 1_000_000))
    assert lost.last_sign_of_life("node3", events_dir, str(alive_dir), None, 2_000_000) == 1_000_000
    (alive_dir / "old").write_text("1\n")  # a mark of an older pingch counts the same
    os.utime(alive_dir / "old", (1_500_000, 1_500_000))
    assert lost.last_sign_of_life("old", events_dir, str(alive_dir), None, 2_000_000) == 1_500_000


@pytest.mark.parametrize(("text", "figures"), [
    ("1\n", {}),  # an older pingch's mark
    ("", {}),
    ("mem_total_kb=100 mem_avail_kb=5", {}),  # cut short by a reader racing the rewrite
    ("mem_total_kb=100 mem_avail_kb=5\nload1=9\n", {"mem_total_kb": 100, "mem_avail_kb": 5}),
    ("mem_total_kb=-100 mem_avail_kb=+5 swap_free_kb=1e3 load1=nan cores=0x10\n", {}),
    ("load1=NaN load1=inf cores=-1\n", {}),
    ("mem_total_kb=100 mem_total_kb=100 cores=4\n", {"cores": 4}),  # twice: which is right?
    ("cores=abc cores=4\n", {}),
    (f"mem_total_kb={'9' * 30} swap_total_kb={2**51} load1=1000001 cores=2000000\n", {}),
    ("mem_total_kb=0 cores=0 mem_avail_kb=0 load1=0\n", {"mem_avail_kb": 0, "load1": 0.0}),
    ("mem_total_kb=١٠٠ cores=４ load1=1.5.1 swap_free_kb= =3 x=1\n", {}),
    ("\x00\xff\ufffd mem_avail_kb=7 \x1b[31m\n", {"mem_avail_kb": 7}),
    ("MEM_TOTAL_KB=5 mem_total_kb 5 cores=2.0 load1=2\n", {"load1": 2.0}),
])
def test_hostile_marks_keep_only_the_well_formed_figures(text: str, figures: dict[str, float]) -> None:
    assert alive.parse_alive(text) == figures


def test_whole_figures_are_ints_and_the_load_a_float() -> None:
    found = alive.parse_alive("mem_total_kb=8 load1=2 cores=1\n")
    assert [type(found[k]) for k in ("mem_total_kb", "load1", "cores")] == [int, float, int]


def test_the_keys_are_written_in_their_order_whatever_the_figures_order() -> None:
    line = alive.encode({"cores": 2, "load1": 0.5, "swap_free_kb": 1, "mem_total_kb": 9})
    assert line == b"mem_total_kb=9 swap_free_kb=1 load1=0.50 cores=2\n"
