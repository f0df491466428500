"""`notifyd snapshot`, `notifyd procs`, `notifyd nodes` (issue 3): real processes, real files.

Snapshots of this machine are taken of processes the tests start; the views
are checked against hand-made snapshot files (schema 1, as nodeview._problem
accepts them) where exact numbers matter, and against a hostile shared
directory where anything may lie.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from harness import NOTIFYD, PINGCH, Home, lease_holder, wait_until

GiB = 1024**3
MiB = 1024**2
BUSY_LOOP = "while True: pass"
ALLOCATE_200MB = "b=bytearray(200*1024*1024); import time; time.sleep(60)"
ROW = re.compile(r"^\s*(\d+) (\S+)\s+(\d+\.\d) ")
PROC_KEYS = {"pid", "user", "cpu", "mem", "rss", "elapsed", "state", "cmd"}


# --------------------------------------------------------------------------- helpers


def _make_home(root: Path, host: str) -> Home:
    """The same isolated user as conftest's `home`, for module-scoped fixtures."""
    root.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFYD_", "XDG_", "APPRISE_"))}
    env.update(HOME=str(root), NOTIFYD_HOST=host, USER=env.get("USER", "tester"), TZ="UTC")
    return Home(root, env, host)


def run(env: dict[str, str], *args: str, timeout: float = 60) -> tuple[int, str, str]:
    p = subprocess.run([NOTIFYD, *args], env=env, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def procs_config(directory: Path, extra: str = "") -> str:
    return f"[procs]\ndir = {directory}\ninterval = 0.3s\n{extra}"


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)


def proc_row(pid: int, user: str, cpu: float, rss: int, cmd: str, *, elapsed: float = 60.0,
             state: str = "running") -> dict[str, Any]:
    return {"pid": pid, "user": user, "cpu": cpu, "mem": round(100.0 * rss / (64 * GiB), 1),
            "rss": rss, "elapsed": elapsed, "state": state, "cmd": cmd}


def node_doc(host: str, *, cores: int = 16, load: tuple[float, float, float] = (0.5, 0.5, 0.5),
             cpu_busy: float = 0.5, mem_total: int = 64 * GiB, mem_available: int = 60 * GiB,
             procs: list[dict[str, Any]] | None = None, gpus: list[dict[str, Any]] | None = None,
             swap_used: int = 0) -> dict[str, Any]:
    """A schema-1 snapshot as `notifyd snapshot` writes it."""
    rows = procs or []
    users: dict[str, dict[str, float]] = {}
    for r in rows:
        u = users.setdefault(r["user"], {"procs": 0, "cpu": 0.0, "rss": 0})
        u["procs"] += 1
        u["cpu"] = round(u["cpu"] + r["cpu"], 1)
        u["rss"] += r["rss"]
    now = time.time()
    doc: dict[str, Any] = {
        "schema": 1, "host": host, "time": round(now, 3), "sample_started": round(now - 0.3, 3),
        "interval": 0.3, "boot_time": now - 86400, "cpu_count": cores, "load": list(load),
        "mem_total": mem_total, "mem_available": mem_available, "swap_used": swap_used,
        "cpu_busy": cpu_busy, "users": users, "procs": sorted(rows, key=lambda r: -r["cpu"]),
        "pids": [[r["pid"], round(now - r["elapsed"], 2)] for r in rows],
        "scan": {"seen": len(rows), "vanished": 0, "denied": 0},
    }
    if gpus is not None:
        doc["gpus"] = gpus
    return doc


def write_node(directory: Path, host: str, **kw: Any) -> Path:
    path = directory / f"{host}.json"
    path.write_text(json.dumps(node_doc(host, **kw)))
    return path


def headers(stdout: str) -> list[str]:
    """The node names of `notifyd procs`' per-node header lines, in order."""
    return [line.split()[0] for line in stdout.splitlines() if line and not line[0].isspace()]


def table(stdout: str) -> dict[str, list[tuple[int, str, float]]]:
    """`notifyd procs` text output as {node: [(pid, user, cpu), ...]} in printed order."""
    result: dict[str, list[tuple[int, str, float]]] = {}
    node = ""
    for line in stdout.splitlines():
        if line and not line[0].isspace():
            node = line.split()[0]
            result[node] = []
            continue
        m = ROW.match(line)
        if m:
            result[node].append((int(m.group(1)), m.group(2), float(m.group(3))))
    return result


def nodes_lines(stdout: str) -> dict[str, list[str]]:
    """`notifyd nodes` text output as {node: its columns split on spaces}, header dropped."""
    lines = stdout.splitlines()
    assert lines and lines[0].startswith("NODE"), stdout
    return {line.split()[0]: line.split() for line in lines[1:] if line.strip()}


def nodes_json(env: dict[str, str], *args: str) -> dict[str, dict[str, Any]]:
    code, out, err = run(env, "nodes", "--json", *args)
    assert code == 0, err
    return {n["node"]: n for n in json.loads(out)}


# --------------------------------------------------------------------------- fixtures


@dataclass
class RealSnapshot:
    code: int
    stdout: str
    stderr: str
    path: Path
    data: dict[str, Any]
    busy_pid: int
    sleep_pid: int
    sleep_created: float
    big_pid: int
    home: Home


@pytest.fixture(scope="module")
def real_snapshot(tmp_path_factory: pytest.TempPathFactory) -> RealSnapshot:
    """One `notifyd snapshot --interval 0.5` of this machine with a busy loop, a
    sleeping process and a 200 MB process running; no nvidia-smi on PATH."""
    root = tmp_path_factory.mktemp("real")
    home = _make_home(root / "home", f"h{uuid.uuid4().hex[:6]}")
    empty_bin = root / "bin"
    empty_bin.mkdir()
    home.env["PATH"] = str(empty_bin)  # no nvidia-smi, whatever the machine has
    started: list[subprocess.Popen[bytes]] = []
    try:
        busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
        started.append(busy)
        sleeper = subprocess.Popen(["sleep", "60"])
        started.append(sleeper)
        big = subprocess.Popen([sys.executable, "-c", ALLOCATE_200MB])
        started.append(big)
        wait_until(lambda: rss_kib(big.pid) >= 200 * 1024, 30, "the 200 MB process's RSS")
        sleep_created = psutil.Process(sleeper.pid).create_time()
        code, out, err = home.notifyd("snapshot", "--interval", "0.5")
    finally:
        stop(started)
    path = home.state_dir / "procs" / f"{home.host}.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    return RealSnapshot(code, out, err, path, data, busy.pid, sleeper.pid, sleep_created, big.pid, home)


@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Home, Path]:
    """Real snapshots from NOTIFYD_HOST=node-a, node-b, node-c into one shared dir."""
    root = tmp_path_factory.mktemp("three")
    home = _make_home(root / "home", "node-a")
    shared = root / "shared"
    shared.mkdir()
    os.chmod(shared, 0o2775)  # noqa: S103 - a lab dir, as the README sets it up
    home.write_config(procs_config(shared))
    for host in ("node-c", "node-a", "node-b"):
        code, _, err = run({**home.env, "NOTIFYD_HOST": host}, "snapshot")
        assert code == 0, err
    return home, shared


@pytest.fixture
def shared(home: Home, tmp_path: Path) -> Path:
    """A lab-style procs dir (2775) named in the home's config."""
    directory = tmp_path / "shared-procs"
    directory.mkdir()
    os.chmod(directory, 0o2775)  # noqa: S103 - a lab dir, as the README sets it up
    home.write_config(procs_config(directory))
    return directory


@pytest.fixture
def filter_nodes(shared: Path) -> Path:
    """node-a: a busy loop (root), alice's big job, bob's sleep; node-b: root and carol."""
    write_node(shared, "node-a", cpu_busy=1.2, procs=[
        proc_row(101, "root", 99.5, 13 * MiB, "python3 -c while True: pass", elapsed=30),
        proc_row(202, "alice", 12.0, 8 * GiB, "python relax.py --steps 400", elapsed=9000),
        proc_row(303, "bob", 0.0, 200 * MiB, "sleep 60", elapsed=50, state="sleeping"),
        proc_row(404, "alice", 3.0, 1 * GiB, "python prep.py", elapsed=600),
    ])
    write_node(shared, "node-b", cpu_busy=0.5, procs=[
        proc_row(501, "root", 40.0, 50 * MiB, "rsync -a /data /backup", elapsed=100),
        proc_row(502, "carol", 5.0, 2 * GiB, "R --vanilla", elapsed=5000),
    ])
    return shared


# --------------------------------------------------------------------------- 1. real snapshot


def test_snapshot_writes_host_json_in_private_state_dir_and_names_it(real_snapshot: RealSnapshot) -> None:
    assert real_snapshot.code == 0, real_snapshot.stderr
    assert real_snapshot.path == real_snapshot.home.state_dir / "procs" / f"{real_snapshot.home.host}.json"
    assert real_snapshot.path.is_file()
    assert real_snapshot.stdout.startswith(f"wrote {real_snapshot.path}: ")


def test_busy_loop_is_listed_with_high_cpu(real_snapshot: RealSnapshot) -> None:
    rows = {r["pid"]: r for r in real_snapshot.data["procs"]}
    assert real_snapshot.busy_pid in rows
    assert rows[real_snapshot.busy_pid]["cpu"] >= 50
    assert "while True: pass" in rows[real_snapshot.busy_pid]["cmd"]


def test_sleeping_process_is_not_listed_as_using_cpu(real_snapshot: RealSnapshot) -> None:
    rows = {r["pid"]: r for r in real_snapshot.data["procs"]}
    assert real_snapshot.sleep_pid in {pid for pid, _ in real_snapshot.data["pids"]}
    # It may be among the top N by RSS on a quiet machine, but never for its CPU.
    if real_snapshot.sleep_pid in rows:
        assert rows[real_snapshot.sleep_pid]["cpu"] < 2


def test_every_pid_is_in_compact_list_with_its_start_time(real_snapshot: RealSnapshot) -> None:
    starts = {int(pid): t for pid, t in real_snapshot.data["pids"]}
    assert real_snapshot.sleep_pid in starts
    assert abs(starts[real_snapshot.sleep_pid] - real_snapshot.sleep_created) < 0.01
    assert sum(u["procs"] for u in real_snapshot.data["users"].values()) == len(starts)


def test_process_allocating_200mb_shows_its_rss(real_snapshot: RealSnapshot) -> None:
    rows = {r["pid"]: r for r in real_snapshot.data["procs"]}
    assert real_snapshot.big_pid in rows, "a 200 MB process is among the top N by RSS"
    row = rows[real_snapshot.big_pid]
    assert row["rss"] >= 190 * MiB
    assert row["mem"] == round(100.0 * row["rss"] / real_snapshot.data["mem_total"], 1)


def test_listed_processes_have_every_field_and_are_sorted_by_cpu(real_snapshot: RealSnapshot) -> None:
    rows = real_snapshot.data["procs"]
    assert rows
    assert all(set(r) == PROC_KEYS for r in rows)
    assert [r["cpu"] for r in rows] == sorted((r["cpu"] for r in rows), reverse=True)


def test_snapshot_describes_the_node(real_snapshot: RealSnapshot) -> None:
    d = real_snapshot.data
    assert d["schema"] == 1
    assert d["host"] == real_snapshot.home.host
    assert abs(d["time"] - time.time()) < 120
    assert 0 < d["boot_time"] < d["time"]
    assert d["cpu_count"] >= 1
    assert len(d["load"]) == 3
    assert all(isinstance(x, (int, float)) for x in d["load"])
    assert d["mem_total"] == psutil.virtual_memory().total
    assert 0 < d["mem_available"] <= d["mem_total"]
    assert d["swap_used"] >= 0


def test_snapshot_counts_processes_per_user(real_snapshot: RealSnapshot) -> None:
    me = psutil.Process().username()
    users = real_snapshot.data["users"]
    assert me in users
    assert users[me]["procs"] >= 3  # the busy loop, the sleep and the 200 MB process at least
    assert users[me]["rss"] >= 190 * MiB


def test_snapshot_scan_counts_every_process(real_snapshot: RealSnapshot) -> None:
    scan = real_snapshot.data["scan"]
    assert set(scan) == {"seen", "vanished", "denied"}
    assert scan["seen"] == len(real_snapshot.data["pids"]) + scan["vanished"] + scan["denied"]
    assert f"{scan['seen']} processes" in real_snapshot.stdout


def test_no_gpus_key_without_nvidia_smi(real_snapshot: RealSnapshot) -> None:
    assert real_snapshot.data  # the snapshot was read
    assert "gpus" not in real_snapshot.data


# --------------------------------------------------------------------------- 2. permissions, atomic write


def test_default_procs_dir_is_created_private(home: Home) -> None:
    code, _, err = home.notifyd("snapshot", "--interval", "0.3")
    assert code == 0, err
    assert (home.state_dir / "procs").stat().st_mode & 0o777 == 0o700


def test_snapshot_in_private_default_dir_is_0600(home: Home) -> None:
    code, _, err = home.notifyd("snapshot", "--interval", "0.3")
    assert code == 0, err
    path = home.state_dir / "procs" / f"{home.host}.json"
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(("dir_mode", "file_mode"), [
    (0o2770, 0o640),  # a lab group dir closed to others: the group may read
    (0o2775, 0o644),  # the README's lab dir: "readable by whoever may list the directory"
    (0o755, 0o644),
    (0o700, 0o600),
], ids=["2770-640", "2775-644", "755-644", "700-600"])
def test_snapshot_is_readable_by_whoever_may_list_the_dir(home: Home, tmp_path: Path, dir_mode: int,
                                                          file_mode: int) -> None:
    directory = tmp_path / "lab-procs"
    directory.mkdir()
    os.chmod(directory, dir_mode)
    home.write_config(procs_config(directory))
    code, _, err = home.notifyd("snapshot")
    assert code == 0, err
    assert (directory / f"{home.host}.json").stat().st_mode & 0o7777 == file_mode


def test_snapshot_leaves_no_temp_files(home: Home, shared: Path) -> None:
    for _ in range(2):
        code, _, err = home.notifyd("snapshot")
        assert code == 0, err
    assert sorted(p.name for p in shared.iterdir()) == [f"{home.host}.json"]


def test_snapshot_replaces_by_rename_so_a_reader_keeps_a_whole_file(home: Home, shared: Path) -> None:
    code, _, err = home.notifyd("snapshot")
    assert code == 0, err
    path = shared / f"{home.host}.json"
    with open(path, "rb") as old:
        old_inode = os.fstat(old.fileno()).st_ino
        code, _, err = home.notifyd("snapshot")
        assert code == 0, err
        assert path.stat().st_ino != old_inode
        assert json.loads(old.read())["host"] == home.host  # the old file, still whole


# --------------------------------------------------------------------------- 3. aggregation


def test_three_hosts_write_three_files_in_one_dir(three_nodes: tuple[Home, Path]) -> None:
    _, directory = three_nodes
    files = sorted(p.name for p in directory.iterdir())
    assert files == ["node-a.json", "node-b.json", "node-c.json"]
    assert [json.loads((directory / f).read_text())["host"] for f in files] == ["node-a", "node-b", "node-c"]


def test_procs_shows_a_header_per_node_sorted(three_nodes: tuple[Home, Path]) -> None:
    home, _ = three_nodes
    code, out, err = home.notifyd("procs")
    assert code == 0, err
    assert headers(out) == ["node-a", "node-b", "node-c"]
    assert all(" load " in line and " mem " in line and "snapshot" in line
               for line in out.splitlines() if line and not line[0].isspace())


def test_procs_lists_process_rows_under_each_node(three_nodes: tuple[Home, Path]) -> None:
    home, _ = three_nodes
    code, out, _ = home.notifyd("procs")
    assert code == 0
    assert all(rows for rows in table(out).values())
    assert out.count("    PID USER") == 3


def test_nodes_shows_one_line_per_node(three_nodes: tuple[Home, Path]) -> None:
    home, _ = three_nodes
    code, out, err = home.notifyd("nodes")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["NODE", "STATE"]
    assert [line.split()[0] for line in lines[1:]] == ["node-a", "node-b", "node-c"]


def test_procs_json_has_documented_keys(three_nodes: tuple[Home, Path]) -> None:
    home, _ = three_nodes
    code, out, err = home.notifyd("procs", "--json")
    assert code == 0, err
    nodes = json.loads(out)
    assert [n["node"] for n in nodes] == ["node-a", "node-b", "node-c"]
    for n in nodes:
        assert set(n) == {"node", "stale", "age", "load", "cpu_count", "mem_total", "mem_available",
                          "scan", "procs"}
        assert n["stale"] is False
        assert len(n["load"]) == 3
        assert n["procs"]
        assert all(set(r) == PROC_KEYS for r in n["procs"])


def test_nodes_json_has_documented_keys(three_nodes: tuple[Home, Path]) -> None:
    home, _ = three_nodes
    code, out, err = home.notifyd("nodes", "--json")
    assert code == 0, err
    nodes = json.loads(out)
    assert [n["node"] for n in nodes] == ["node-a", "node-b", "node-c"]
    for n in nodes:
        assert set(n) == {"source", "node", "state", "age", "cores", "busy_cores", "free_cores", "load",
                          "mem_total", "mem_free", *PRESSURE_KEYS, "gpus_busy", "gpus", "top_users"}
        assert n["source"] == "snapshot"
        assert n["state"] in {"idle", "mixed", "busy"}
        assert n["cores"] == psutil.cpu_count()
        assert n["gpus"] == 0
        assert all(set(u) == {"user", "cores"} for u in n["top_users"])


PRESSURE_KEYS = {"mem_used_percent", "mem_trend", "mem_use_per_min", "mem_minutes_left", "swap_used",
                 "swap_total", "swap_growing", "pressure", "history_points"}


def _falling(host: str, shares: list[float]) -> dict[str, Any]:
    """A snapshot whose history shows available memory at `shares` of 64 GiB, a minute apart."""
    doc = node_doc(host, mem_available=int(shares[-1] * 64 * GiB))
    doc["history"] = [[doc["time"] - 60 * (len(shares) - 1 - i), s * 64 * GiB, 64 * GiB, 0, 0, 1.0, 8]
                      for i, s in enumerate(shares)]
    return doc


def test_nodes_shows_memory_in_use_and_its_trend_within_80_columns(home: Home, shared: Path) -> None:
    (shared / "node-fill.json").write_text(json.dumps(_falling("node-fill", [0.5, 0.4, 0.3, 0.2, 0.1])))
    (shared / "node-calm.json").write_text(json.dumps(_falling("node-calm", [0.5] * 5)))
    write_node(shared, "node-new")  # no history yet: no arrow
    code, out, err = home.notifyd("nodes")
    assert code == 0, err
    assert out.splitlines()[0].split()[4:6] == ["USED/TOTAL", "MEM"]
    lines = nodes_lines(out)
    assert lines["node-fill"][4] == "90%↑" and lines["node-calm"][4] == "50%→"
    assert lines["node-new"][4] == "6%"  # no history yet: no arrow
    assert all(len(line) <= 80 for line in out.splitlines())


def test_nodes_json_gives_the_pressure_figures(home: Home, shared: Path) -> None:
    (shared / "node-fill.json").write_text(json.dumps(_falling("node-fill", [0.5, 0.4, 0.3, 0.2, 0.08])))
    node = nodes_json(home.env)["node-fill"]
    assert node["mem_used_percent"] == 92.0 and node["mem_trend"] == "rising"
    assert node["pressure"] == ["low", "ahead"] and node["history_points"] == 5
    assert 5 * GiB < node["mem_use_per_min"] < 7 * GiB and 0 < node["mem_minutes_left"] < 2


def test_procs_leaves_the_shared_dir_as_it_found_it(three_nodes: tuple[Home, Path]) -> None:
    home, directory = three_nodes
    before = sorted(p.name for p in directory.iterdir())
    code, _, _ = home.notifyd("procs")
    assert code == 0
    assert sorted(p.name for p in directory.iterdir()) == before  # its clock probe is gone


# --------------------------------------------------------------------------- 4. stale by age


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_old_snapshot_is_marked_stale_with_its_age_in_procs(home: Home, shared: Path) -> None:
    _age(write_node(shared, "node-old"), 600)
    write_node(shared, "node-new")
    code, out, err = home.notifyd("procs")
    assert code == 0, err
    head = {line.split()[0]: line for line in out.splitlines() if line and not line[0].isspace()}
    assert "STALE" in head["node-old"]
    assert "10 min old" in head["node-old"]
    assert "STALE" not in head["node-new"]


def test_old_snapshot_is_stale_in_procs_json(home: Home, shared: Path) -> None:
    _age(write_node(shared, "node-old"), 600)
    code, out, _ = home.notifyd("procs", "--json")
    assert code == 0
    (node,) = json.loads(out)
    assert node["stale"] is True
    assert 595 <= node["age"] <= 660


def test_old_snapshot_is_stale_in_nodes(home: Home, shared: Path) -> None:
    _age(write_node(shared, "node-old"), 600)
    write_node(shared, "node-new")
    code, out, err = home.notifyd("nodes")
    assert code == 0, err
    lines = nodes_lines(out)
    assert lines["node-old"][1] == "stale"
    assert lines["node-new"][1] != "stale"
    assert nodes_json(home.env)["node-old"]["state"] == "stale"


def test_nodes_free_excludes_stale_nodes(home: Home, shared: Path) -> None:
    _age(write_node(shared, "node-old", cpu_busy=0.0, load=(0, 0, 0)), 600)  # idle-looking but dead
    write_node(shared, "node-new", cpu_busy=8.0, load=(8, 8, 8))
    code, out, err = home.notifyd("nodes", "--free", "--cpus", "1")
    assert code == 0, err
    assert list(nodes_lines(out)) == ["node-new"]


def test_longer_stale_after_keeps_old_snapshot_fresh(home: Home, shared: Path) -> None:
    home.write_config(procs_config(shared, "stale_after = 20m\n"))
    _age(write_node(shared, "node-old"), 600)
    code, out, err = home.notifyd("procs")
    assert code == 0, err
    assert "STALE" not in out
    assert nodes_json(home.env)["node-old"]["state"] != "stale"


# --------------------------------------------------------------------------- 5. filters


def test_procs_default_sort_is_cpu_descending(home: Home, filter_nodes: Path) -> None:
    code, out, err = home.notifyd("procs")
    assert code == 0, err
    assert [pid for pid, _, _ in table(out)["node-a"]] == [101, 202, 404, 303]


def test_user_filter_keeps_only_that_users_rows(home: Home, filter_nodes: Path) -> None:
    code, out, err = home.notifyd("procs", "--user", "root")
    assert code == 0, err
    rows = table(out)
    assert {pid for node_rows in rows.values() for pid, _, _ in node_rows} == {101, 501}


def test_user_filter_takes_several_users(home: Home, filter_nodes: Path) -> None:
    code, out, _ = home.notifyd("procs", "--user", "alice", "--user", "carol")
    assert code == 0
    assert {pid for node_rows in table(out).values() for pid, _, _ in node_rows} == {202, 404, 502}


def test_user_filter_with_absent_user_lists_no_rows(home: Home, filter_nodes: Path) -> None:
    code, out, err = home.notifyd("procs", "--user", "no-such-user")
    assert code == 0, err
    rows = table(out)
    assert set(rows) == {"node-a", "node-b"}
    assert all(not r for r in rows.values())
    assert out.count("(no matching processes)") == 2


def test_node_filter_shows_only_that_node(home: Home, filter_nodes: Path) -> None:
    code, out, err = home.notifyd("procs", "--node", "node-b")
    assert code == 0, err
    assert headers(out) == ["node-b"]
    assert [pid for pid, _, _ in table(out)["node-b"]] == [501, 502]


def test_min_cpu_keeps_only_the_busy_loop(home: Home, filter_nodes: Path) -> None:
    code, out, err = home.notifyd("procs", "--min-cpu", "50")
    assert code == 0, err
    rows = table(out)
    assert rows["node-a"] == [(101, "root", 99.5)]
    assert rows["node-b"] == []


def test_sort_rss_orders_largest_first(home: Home, filter_nodes: Path) -> None:
    code, out, err = home.notifyd("procs", "--sort", "rss")
    assert code == 0, err
    assert [pid for pid, _, _ in table(out)["node-a"]] == [202, 404, 303, 101]


def test_sort_elapsed_orders_longest_first(home: Home, filter_nodes: Path) -> None:
    code, out, _ = home.notifyd("procs", "--sort", "elapsed")
    assert code == 0
    assert [pid for pid, _, _ in table(out)["node-a"]] == [202, 404, 303, 101]
    assert [pid for pid, _, _ in table(out)["node-b"]] == [502, 501]


def test_sort_bogus_is_a_usage_error(home: Home, filter_nodes: Path) -> None:
    code, out, err = home.notifyd("procs", "--sort", "bogus")
    assert code == 2
    assert "bogus" in err
    assert "cpu, mem, rss or elapsed" in err or "cpu, mem, rss, elapsed" in err
    assert "Traceback" not in err
    assert out == ""


def test_filters_apply_to_json_output(home: Home, filter_nodes: Path) -> None:
    code, out, err = home.notifyd("procs", "--json", "--user", "alice", "--min-cpu", "5")
    assert code == 0, err
    by_node = {n["node"]: [r["pid"] for r in n["procs"]] for n in json.loads(out)}
    assert by_node == {"node-a": [202], "node-b": []}


# --------------------------------------------------------------------------- 6. nodes --free


@pytest.fixture
def free_nodes(shared: Path) -> Path:
    write_node(shared, "node-big", cores=16, load=(2, 2, 2), cpu_busy=2.0, mem_available=40 * GiB)
    write_node(shared, "node-mid", cores=8, load=(1, 1, 1), cpu_busy=1.0, mem_available=30 * GiB)
    write_node(shared, "node-full", cores=4, load=(4, 4, 4), cpu_busy=4.0, mem_available=50 * GiB)
    write_node(shared, "node-lowmem", cores=16, load=(0, 0, 0), cpu_busy=0.0, mem_available=8 * GiB)
    return shared


def test_nodes_free_lists_fitting_nodes_most_free_cores_first(home: Home, free_nodes: Path) -> None:
    code, out, err = home.notifyd("nodes", "--free", "--cpus", "4", "--mem", "20G")
    assert code == 0, err
    lines = nodes_lines(out)
    assert list(lines) == ["node-big", "node-mid"]
    assert lines["node-big"][1] == "14.0"


def test_nodes_free_lists_only_the_node_with_room(home: Home, free_nodes: Path) -> None:
    code, out, err = home.notifyd("nodes", "--free", "--cpus", "10", "--mem", "20G")
    assert code == 0, err
    assert list(nodes_lines(out)) == ["node-big"]


def test_nodes_free_json_lists_the_same_nodes(home: Home, free_nodes: Path) -> None:
    code, out, err = home.notifyd("nodes", "--free", "--cpus", "4", "--mem", "20G", "--json")
    assert code == 0, err
    assert [n["node"] for n in json.loads(out)] == ["node-big", "node-mid"]


def test_nodes_free_impossible_request_exits_1_with_a_message(home: Home, free_nodes: Path) -> None:
    code, out, err = home.notifyd("nodes", "--free", "--cpus", "100", "--mem", "20G")
    assert code == 1
    assert "no fresh node has 100 free cores" in err
    assert "Traceback" not in err
    assert out == ""


def test_nodes_mem_not_a_size_is_a_usage_error(home: Home, free_nodes: Path) -> None:
    code, out, err = home.notifyd("nodes", "--free", "--mem", "lots")
    assert code == 2
    assert err.startswith("notifyd: --mem: ")
    assert "20G" in err
    assert "Traceback" not in err
    assert out == ""


def test_nodes_mem_infinite_is_a_usage_error_not_a_traceback(home: Home, free_nodes: Path) -> None:
    code, _, err = home.notifyd("nodes", "--free", "--mem", "inf")
    assert "Traceback" not in err
    assert code == 2


# --------------------------------------------------------------------------- 7. state classification


STATE_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "idle": ({"cores": 16, "cpu_busy": 0.5, "load": (0.5, 0.5, 0.5)}, "idle"),
    "mixed": ({"cores": 16, "cpu_busy": 8.0, "load": (8, 8, 8)}, "mixed"),
    "busy-cpu": ({"cores": 16, "cpu_busy": 14.0, "load": (14, 14, 14)}, "busy"),
    "busy-at-85pct": ({"cores": 20, "cpu_busy": 17.0, "load": (1, 1, 1)}, "busy"),
    "mixed-under-85pct": ({"cores": 20, "cpu_busy": 16.8, "load": (1, 1, 1)}, "mixed"),
    "busy-by-load": ({"cores": 16, "cpu_busy": 0.0, "load": (15, 15, 15)}, "busy"),
    "busy-low-memory": ({"cores": 16, "cpu_busy": 0.1, "mem_total": 64 * GiB,
                         "mem_available": 6 * GiB}, "busy"),
    "gpu-in-use-not-idle": ({"cores": 16, "cpu_busy": 0.1, "gpus": [
        {"index": 0, "name": "A100", "util": 95.0, "mem_used": GiB, "mem_total": 40 * GiB, "procs": []}]},
        "mixed"),
}


@pytest.fixture(scope="module")
def state_views(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """One node per STATE_CASES entry in one dir; `notifyd nodes` and `nodes --json` of it."""
    root = tmp_path_factory.mktemp("states")
    home = _make_home(root / "home", "viewer")
    directory = root / "procs"
    directory.mkdir()
    home.write_config(procs_config(directory))
    for name, (kw, _) in STATE_CASES.items():
        write_node(directory, name, **kw)
    code, out, err = home.notifyd("nodes")
    assert code == 0, err
    return nodes_lines(out), nodes_json(home.env)


@pytest.mark.parametrize("case", list(STATE_CASES))
def test_nodes_classifies_state(state_views: tuple[dict[str, list[str]], dict[str, Any]],
                                case: str) -> None:
    lines, as_json = state_views
    expected = STATE_CASES[case][1]
    assert lines[case][1] == expected
    assert as_json[case]["state"] == expected


def test_nodes_counts_busy_gpus(home: Home, shared: Path) -> None:
    gpus = [{"index": 0, "name": "A100", "util": 0.0, "mem_used": GiB, "mem_total": 40 * GiB,
             "procs": [{"pid": 7, "mem": GiB}]},
            {"index": 1, "name": "A100", "util": 0.0, "mem_used": 0, "mem_total": 40 * GiB, "procs": []}]
    write_node(shared, "node-gpu", gpus=gpus)
    node = nodes_json(home.env)["node-gpu"]
    assert (node["gpus_busy"], node["gpus"]) == (1, 2)


# --------------------------------------------------------------------------- 8. hostile shared dir


def _hostile(case: str, bad: Path, elsewhere: Path) -> str:
    """Make `bad` hostile in the way `case` names; return what the skip note must say."""
    good = json.dumps(node_doc("node-bad"))
    if case == "malformed":
        bad.write_text("this is {not json")
        return "not valid JSON"
    if case == "truncated":
        bad.write_text(good[: len(good) // 2])
        return "not valid JSON"
    if case == "enormous":
        bad.write_text(good + " " * (9 * MiB))
        return "8 MiB"
    if case == "symlink":
        target = elsewhere / "node-bad.json"
        target.write_text(good)
        bad.symlink_to(target)
        return "symlink"
    if case == "fifo":
        os.mkfifo(bad)
        return "not a regular file"
    if case == "future-schema":
        bad.write_text(json.dumps({**node_doc("node-bad"), "schema": 2}))
        return "newer"
    if case == "array":
        bad.write_text(json.dumps([node_doc("node-bad")]))
        return "not a JSON object"
    if case == "row-missing-fields":
        doc = node_doc("node-bad", procs=[proc_row(1, "root", 1.0, MiB, "init")])
        del doc["procs"][0]["cmd"]
        bad.write_text(json.dumps(doc))
        return "missing fields"
    raise AssertionError(case)


HOSTILE = ["malformed", "truncated", "enormous", "symlink", "fifo", "future-schema", "array",
           "row-missing-fields"]


@pytest.mark.parametrize("case", HOSTILE)
def test_procs_skips_hostile_file_with_one_note(home: Home, shared: Path, tmp_path: Path, case: str) -> None:
    write_node(shared, "node-good", procs=[proc_row(4242, "root", 50.0, MiB, "good-job")])
    bad = shared / "node-bad.json"
    reason = _hostile(case, bad, tmp_path)
    code, out, err = home.notifyd("procs", timeout=20)
    assert code == 0, err
    assert headers(out) == ["node-good"]
    assert "good-job" in out
    notes = [line for line in err.splitlines() if line.startswith("notifyd: skipped ")]
    assert len(notes) == 1, err
    assert notes[0].startswith(f"notifyd: skipped {bad}: ")
    assert reason in notes[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("case", HOSTILE)
def test_nodes_skips_hostile_file_with_one_note(home: Home, shared: Path, tmp_path: Path, case: str) -> None:
    write_node(shared, "node-good")
    bad = shared / "node-bad.json"
    _hostile(case, bad, tmp_path)
    code, out, err = home.notifyd("nodes", timeout=20)
    assert code == 0, err
    assert list(nodes_lines(out)) == ["node-good"]
    assert len([line for line in err.splitlines() if line.startswith(f"notifyd: skipped {bad}: ")]) == 1
    assert "Traceback" not in err


def test_procs_survives_a_snapshot_with_a_null_swap_field(home: Home, shared: Path) -> None:
    write_node(shared, "node-good")
    (shared / "node-bad.json").write_text(json.dumps({**node_doc("node-bad"), "swap_used": None}))
    code, out, err = home.notifyd("procs")
    assert "Traceback" not in err
    assert code == 0
    assert "node-good" in out


def test_nodes_survives_a_snapshot_with_a_non_numeric_cpu_busy(home: Home, shared: Path) -> None:
    write_node(shared, "node-good")
    (shared / "node-bad.json").write_text(json.dumps({**node_doc("node-bad"), "cpu_busy": "lots"}))
    code, out, err = home.notifyd("nodes")
    assert "Traceback" not in err
    assert code == 0
    assert "node-good" in out


# --------------------------------------------------------------------------- 9. 80 columns, no colour


def test_procs_fits_80_columns_with_a_very_long_command(home: Home, shared: Path) -> None:
    long_cmd = "/opt/conda/envs/lab/bin/python3.11 train.py " + " ".join(
        f"--option-{i}=value-{i}" for i in range(40))
    write_node(shared, "node5", load=(15.8, 15.2, 14.9), cpu_busy=15.8, procs=[
        proc_row(81234, "ana-long-username", 398.0, 7 * GiB, long_cmd, elapsed=3 * 86400),
        proc_row(99, "bob", 2.0, MiB, "sleep 60")])
    code, out, err = run({**home.env, "COLUMNS": "80"}, "procs")
    assert code == 0, err
    assert "train.py" in out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert not [line for line in out.splitlines() if len(line) > 80]


def test_procs_fits_80_columns_for_real_snapshots(three_nodes: tuple[Home, Path]) -> None:
    home, _ = three_nodes
    code, out, _ = run({**home.env, "COLUMNS": "80"}, "procs")
    assert code == 0
    assert out.strip()
    assert [line for line in out.splitlines() if len(line) > 80] == []


def test_no_ansi_codes_when_stdout_is_not_a_tty(home: Home, shared: Path) -> None:
    _age(write_node(shared, "node-old", procs=[proc_row(1, "root", 5.0, MiB, "job")]), 600)
    write_node(shared, "node-busy", cpu_busy=16.0, load=(16, 16, 16))
    env = {k: v for k, v in home.env.items() if k != "NO_COLOR"}
    for verb in ("procs", "nodes"):
        code, out, err = run(env, verb)
        assert code == 0, err
        assert "STALE" in out or "stale" in out
        assert "\x1b" not in out


def test_procs_stale_header_of_a_cluster_node_fits_80_columns(home: Home, shared: Path) -> None:
    _age(write_node(shared, "compute-node-017", cores=32, load=(31.9, 30, 30), cpu_busy=31.5,
                    mem_total=251 * GiB, mem_available=71 * GiB, swap_used=int(2.5 * GiB)), 3900)
    code, out, err = run({**home.env, "COLUMNS": "80"}, "procs")
    assert code == 0, err
    assert "STALE" in out
    assert [line for line in out.splitlines() if len(line) > 80] == []


def test_nodes_tells_nodes_with_long_similar_names_apart(home: Home, shared: Path) -> None:
    write_node(shared, "compute-node-017")
    write_node(shared, "compute-node-018")
    code, out, err = home.notifyd("nodes")
    assert code == 0, err
    names = [line.split()[0] for line in out.splitlines()[1:]]
    assert len(set(names)) == 2


def test_procs_command_with_a_newline_stays_on_one_row(home: Home, shared: Path) -> None:
    write_node(shared, "node5", procs=[
        proc_row(4242, "ana", 99.0, MiB, 'python -c import time\nwhile True: pass')])
    code, out, err = run({**home.env, "COLUMNS": "80"}, "procs")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[-1].lstrip().startswith("4242 ")


def test_procs_command_with_escape_codes_prints_no_escape_codes(home: Home, shared: Path) -> None:
    write_node(shared, "node5", procs=[proc_row(4242, "ana", 99.0, MiB, "echo \x1b[2J\x1b[31mred")])
    code, out, err = run({**home.env, "COLUMNS": "80"}, "procs")
    assert code == 0, err
    assert "4242" in out
    assert "\x1b" not in out


# --------------------------------------------------------------------------- 10. missing procs dir


@pytest.mark.parametrize("verb", ["procs", "nodes"])
def test_a_missing_dir_is_said_once_with_what_writes_snapshots_and_exits_0(
        home: Home, tmp_path: Path, verb: str) -> None:
    missing = tmp_path / "no-such-procs-dir"
    home.write_config(procs_config(missing) + "[slurm]\nenabled = no\n")
    code, out, err = home.notifyd(verb)
    assert code == 0
    assert out == (f"no node snapshots in {missing} (it does not exist yet)\n"
                   "(notifyd snapshot writes one; notifyd cron install runs it every minute)\n")
    assert err == ""  # once: not a note on stderr as well


def test_an_empty_dir_is_said_once_too(home: Home, tmp_path: Path) -> None:
    home.write_config(procs_config(tmp_path) + "[slurm]\nenabled = no\n")
    code, out, err = home.notifyd("procs")
    assert (code, err) == (0, "")
    assert out.count("no node snapshots") == 1 and "does not exist" not in out


def test_snapshot_into_missing_configured_dir_fails_with_how_to_create_it(home: Home,
                                                                         tmp_path: Path) -> None:
    missing = tmp_path / "no-such-procs-dir"
    home.write_config(procs_config(missing))
    code, _, err = home.notifyd("snapshot")
    assert code != 0
    assert str(missing) in err
    assert f"mkdir -p {missing}" in err
    assert "Traceback" not in err
    assert not missing.exists()  # a configured lab dir is not invented on the fly



FAKE_NVIDIA_SMI = """#!/bin/sh
# Stands in for the real nvidia-smi, which needs GPU hardware this machine lacks;
# the output is the CSV format of nvidia-smi 550 for these two queries.
case "$*" in
  *--query-gpu=*) printf '0, GPU-aaaa, NVIDIA RTX A4000, 87, 10240, 16376\\n'
                  printf '1, GPU-bbbb, NVIDIA RTX A4000, 0, 3, 16376\\n' ;;
  *--query-compute-apps=*) printf '%s, GPU-aaaa, 10200\\n' "$JOBPID" ;;
esac
"""


def test_snapshot_records_each_gpu_with_the_processes_using_it(home: Home, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "nvidia-smi"
    fake.write_text(FAKE_NVIDIA_SMI)
    fake.chmod(0o755)
    home.env["PATH"] = f"{bin_dir}:/usr/bin:/bin"
    home.env["JOBPID"] = "4242"
    code, _, err = home.notifyd("snapshot", "--interval", "0.2")
    assert code == 0, err
    snap = json.loads((home.state_dir / "procs" / f"{home.host}.json").read_text())
    gpu0, gpu1 = snap["gpus"]
    assert (gpu0["index"], gpu0["util"], gpu0["mem_used"], gpu0["mem_total"]) == (
        0, 87.0, 10240 * 1024**2, 16376 * 1024**2)
    assert gpu0["procs"] == [{"pid": 4242, "mem": 10200 * 1024**2}]
    assert gpu1["procs"] == []
    lines = nodes_lines(home.notifyd("nodes")[1])
    assert lines[home.host][5] == "1/2"  # one of two GPUs busy


def test_processes_the_snapshot_could_not_read_are_counted_in_the_header(
        home: Home, shared: Path) -> None:
    path = write_node(shared, "node-x")
    doc = json.loads(path.read_text())
    doc["scan"] = {"seen": 120, "vanished": 3, "denied": 2}
    path.write_text(json.dumps(doc))
    code, out, _ = home.notifyd("procs")
    assert code == 0 and "(3 vanished, 2 denied)" in out
    assert json.loads(home.notifyd("procs", "--json")[1])[0]["scan"]["denied"] == 2


@pytest.mark.parametrize(("field", "value"), [
    ("rss", "1" + "0" * 400), ("elapsed", "Infinity"), ("elapsed", "NaN"), ("cpu", "-5"),
])
def test_snapshot_with_absurd_numbers_is_skipped_not_a_crash(
        home: Home, shared: Path, field: str, value: str) -> None:
    write_node(shared, "good")
    doc = json.loads(write_node(shared, "evil").read_text())
    doc["procs"] = [proc_row(1, "eve", 1.0, 1024, "x")]
    text = json.dumps(doc).replace(f'"{field}": ', f'"{field}": {value}, "_was": ', 1)
    (shared / "evil.json").write_text(text)
    for verb in (("procs",), ("nodes",), ("nodes", "--json")):
        code, out, err = home.notifyd(*verb)
        assert code == 0 and "Traceback" not in err, (verb, err)
        assert "good" in out and f"skipped {shared / 'evil.json'}" in err
    json.loads(home.notifyd("nodes", "--json")[1])  # valid JSON: no NaN leaked


@pytest.mark.parametrize(("field", "value"), [("mem_total", 10**400), ("cpu_count", 10**400)])
def test_node_fields_out_of_range_are_skipped(home: Home, shared: Path, field: str, value: int) -> None:
    doc = json.loads(write_node(shared, "evil").read_text())
    doc[field] = value
    (shared / "evil.json").write_text(json.dumps(doc))
    code, _, err = home.notifyd("nodes")
    assert code == 0 and "Traceback" not in err and "out of range" in err


def test_directory_flooded_with_files_is_read_only_up_to_its_bound(home: Home, shared: Path) -> None:
    write_node(shared, "aaa-good")
    for i in range(1005):
        (shared / f"zz{i:04d}.json").write_text("{}")
    code, out, err = home.notifyd("nodes")
    assert code == 0 and "aaa-good" in out
    assert "skipped 6 files" in err and "more than 1000 snapshots" in err


def test_snapshot_interval_over_30_seconds_is_refused(home: Home) -> None:
    home.write_config("[procs]\ninterval = 1e300\n")
    code, _, err = home.notifyd("snapshot")
    assert code == 3 and "interval" in err and "Traceback" not in err
    home.write_config("")
    code, _, err = home.notifyd("snapshot", "--interval", "1e300")
    assert code == 2 and "Traceback" not in err


def test_procs_names_the_watcher_and_a_detached_jobs_pingch(home: Home, tmp_path: Path) -> None:
    home.write_config("[procs]\nmin_cpu = 0\ninterval = 0.3s\n")  # every process listed
    go = tmp_path / "go"
    p = subprocess.run([PINGCH, "-d", "sh", "-c", f"until [ -e {go} ]; do sleep 0.05; done"],
                       env=home.env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    try:
        wait_until(lambda: lease_holder(home), 20, "the watcher pingch -d started")
        wait_until(lambda: [ev for ev in home.events() if ev["ev"] == "start"], 20,
                   "the detached job's start")
        code, _, err = run(home.env, "snapshot")
        assert code == 0, err
        code, out, err = run(home.env, "procs", "-u", pwd.getpwuid(os.getuid()).pw_name)
    finally:
        go.touch()
    assert code == 0, err
    commands = [line.split(maxsplit=6)[-1] for line in out.splitlines() if ROW.match(line)]
    assert f"notifyd watcher ({home.env['USER']})" in commands
    assert any(c.startswith("pingch -d sh -c until") for c in commands), commands
