"""Node snapshots (nodes/reader.py) in a procs directory labmates can write to.

Whatever the directory holds (random files, symlinks, FIFOs, directories,
huge or deep JSON, wrong types, NaN, 401-digit integers), `load` never
raises and every snapshot name ends as a Node or as a note naming it; what
it accepts, the node view and the lost-job judge can use.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from fuzz.hostile import cases, json_value, odd_value, spoiled, text
from hypothesis import event, given
from hypothesis import strategies as st

from notifyd.nodes import pressure, reader
from notifyd.records import RunningJob
from notifyd.watcher import lost

NOW = time.time()
ROW = {"pid": 4242, "user": "ana", "cpu": 99.5, "mem": 1.2, "rss": 123456, "elapsed": 60.0, "state": "R",
       "cmd": "python relax.py"}
SNAPSHOT: dict[str, Any] = {
    "schema": 1, "host": "node5", "time": NOW, "sample_started": NOW - 1, "interval": 1.0,
    "boot_time": NOW - 86400, "cpu_count": 8, "load": [1.0, 0.5, 0.25], "mem_total": 2**35,
    "mem_available": 2**34, "swap_used": 0, "cpu_busy": 1.0,
    "users": {"ana": {"procs": 3, "cpu": 99.5, "rss": 123456}}, "procs": [ROW],
    "pids": [[4242, NOW - 60], [1, NOW - 86400]], "scan": {"seen": 200, "vanished": 0, "denied": 0},
    "gpus": [{"index": 0, "util": 50, "procs": [4242]}], "swap_total": 2**33,
    "history": [[NOW - 120, 2**34, 2**35, 0, 2**33, 1.0, 8],
                [NOW - 60, 2**33, 2**35, None, None, None, None]],
}
TOP_KEYS = sorted(SNAPSHOT)
# Fields the reader may not check at all, and the judge reads.
LOOSE_KEYS = ["boot_time", "cpu_busy", "gpus", "history", "interval", "pids", "sample_started", "scan",
              "swap_total", "swap_used"]


def _odd_row() -> st.SearchStrategy[list[Any]]:
    """A history row with some of its numbers odd (None where one was removed)."""
    row = dict(zip("0123456", SNAPSHOT["history"][0], strict=True))
    return spoiled(row, list(row)).map(lambda d: [d.get(str(i)) for i in range(7)])


def _nested() -> st.SearchStrategy[dict[str, Any]]:
    """The snapshot with some top-level fields odd, or one inside a row, a user, a GPU or a pid pair."""
    inner = st.one_of(
        spoiled(ROW, sorted(ROW)).map(lambda row: {**SNAPSHOT, "procs": [row, ROW]}),
        st.tuples(text(8), odd_value()).map(lambda kv: {**SNAPSHOT, "users": {kv[0]: {"cpu": kv[1]}}}),
        odd_value().map(lambda v: {**SNAPSHOT, "gpus": [{"util": v, "procs": []}]}),
        odd_value().map(lambda v: {**SNAPSHOT, "gpus": [{"util": 1, "procs": v}]}),
        st.lists(st.one_of(st.tuples(st.just(4242), odd_value()).map(list), st.lists(odd_value(), max_size=3),
                           odd_value()), max_size=3).map(lambda p: {**SNAPSHOT, "pids": p}),
        odd_value().map(lambda v: {**SNAPSHOT, "load": [v, 0, 0]}),
        st.lists(st.one_of(st.lists(odd_value(), min_size=7, max_size=7), _odd_row(), odd_value()),
                 max_size=4).map(lambda rows: {**SNAPSHOT, "history": rows}),
    )
    return st.one_of(spoiled(SNAPSHOT, TOP_KEYS), spoiled(SNAPSHOT, LOOSE_KEYS, 2), inner)


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8", "surrogatepass")  # NaN, Infinity and any int, as a writer can


CONTENT = st.one_of(
    _nested().map(_dumps),
    json_value().map(_dumps),
    st.binary(max_size=100),
    st.sampled_from([b"", b"[" * 100_000, b'{"a":' * 50_000, b"9" * 5000, b"NaN", b'{"schema":1e999}',
                     b"\xff\xfe{}", json.dumps(SNAPSHOT).encode()[:-7]]),
)
KIND = st.sampled_from(["file", "file", "file", "symlink", "dangling", "loop", "fifo", "dir", "big",
                        "unreadable"])
NAME = st.one_of(st.sampled_from(["node5", "node6", "n", "é", ".hidden", "x y", "-"]), st.text(
    st.characters(exclude_characters="/\x00", exclude_categories=("Cs",)), min_size=1, max_size=20))


def _make(directory: Path, name: str, kind: str, content: bytes) -> None:
    path = directory / name
    if kind in ("file", "unreadable"):
        path.write_bytes(content)
        if kind == "unreadable":
            path.chmod(0)
    elif kind == "big":
        with path.open("wb") as f:
            f.truncate(reader.MAX_BYTES + 1)  # sparse: over the bound without writing it
    elif kind == "symlink":
        target = directory / f".target-{name}"
        target.write_bytes(content)
        path.symlink_to(target)
    elif kind == "dangling":
        path.symlink_to(directory / "nowhere")
    elif kind == "loop":
        path.symlink_to(path)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()


def _use(node: reader.Node) -> None:
    """Everything the node view, the lost judge and the pressure rules read from an accepted node."""
    _ = (node.cores, node.busy_cores, node.free_cores, node.mem_total, node.mem_free, node.gpus,
         node.state, node.top_users(), node.memory_users(), pressure.direction(node.history))
    for settings in (pressure.Settings(0.1, 900.0, cpu=True), pressure.Settings(0.0, 1e-9)):
        reading = pressure.judge(node.history, settings)
        assert reading is not None
        pressure.recovered(reading, settings)
    for start in (None, 0.0, NOW - 60, NOW - 3600, 2.0**62):
        job = RunningJob(host=node.host, pid=4242, start_ts=start)
        lost.judge(job, node, 0.0, None, grace=120.0, silent_after=900.0)
        lost.judge(job, node, 1e9, 500.0, grace=120.0, silent_after=900.0)


@cases(500)
@given(st.dictionaries(NAME, st.tuples(KIND, CONTENT), min_size=1, max_size=5),
       st.sampled_from([".json", ".json", ".json", ".JSON", ".json.tmp", ""]))
def test_every_snapshot_in_a_hostile_directory_is_a_node_or_a_note_and_load_never_raises(
        files: dict[str, tuple[str, bytes]], suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for name, (kind, content) in files.items():
            _make(directory, name + suffix, kind, content)
        nodes, notes = reader.load(directory, 600.0, "node5")
        for name in files:
            path = directory / (name + suffix)
            wanted = (name + suffix).endswith(".json") and not name.startswith(".")
            as_node = [n for n in nodes if n.host == name]
            as_note = [n for n in notes if f"skipped {path}:" in n]
            assert len(as_node) + len(as_note) == (1 if wanted else 0), (name, notes)
        for node in nodes:
            _use(node)
        for path in directory.iterdir():
            if not path.is_symlink() and path.is_file():
                path.chmod(0o600)  # so that the directory can be removed


@cases(800)
@given(CONTENT)
def test_one_snapshot_file_of_any_content_is_read_or_skipped_with_a_reason(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "node5.json"
        path.write_bytes(content)
        data, mtime, why = reader.read_one(path)
        assert (data is None) == bool(why)
        event("accepted" if data is not None else "skipped")
        if data is not None:
            assert mtime > 0
            _use(reader.Node("node5", data, 1.0, False))
