"""The benchmark suite's smoke run: every figure measured at tiny sizes, so bench/ never rots.

No target is judged here (timed assertions belong in bench/, not in tests);
what is checked is that every row is produced with numbers in it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ROWS = [
    "pingch overhead per job",
    "`hooks/notifyd.bash` added to a bash login",
    "pingch's busy-node check at a job's start",
    "finish -> message at a local webhook, job from another host",
    "finish -> message at a local webhook, job on the watcher's host",
    "watcher idle for 2 s with 6 host files: CPU",
    "watcher idle for 2 s with 6 host files: RSS",
    "burst: 30 jobs finishing",
    "burst: messages sent to the webhook for 30 jobs",
    "history of 2,000 events: watcher restart to ready",
    "history of 2,000 events: `notifyd jobs`",
    "`notifyd procs` over 3 node snapshots",
    "`notifyd snapshot` with ~",
]


def test_quick_run_measures_every_figure_and_writes_the_results(tmp_path: Path) -> None:
    out = tmp_path / "results.md"
    venv = Path(sys.executable).parent.parent
    # The bench's homes in this test's temp dir, where the suite's last check
    # (conftest.py) finds any watcher they leave behind.
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    p = subprocess.run([sys.executable, "-m", "bench", "--quick", "--venv", str(venv), "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=170, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    text = out.read_text()
    assert "- mode: QUICK" in text
    assert "- command: `python3 -m bench --quick --venv" in text
    table = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(table) == len(ROWS)
    for row, name in zip(table, ROWS, strict=True):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[0].startswith(name), (cells[0], name)
        assert re.search(r"\d", cells[1]), f"no number for {name}: {cells[1]}"
        assert cells[5] == "report"  # quick runs judge no target
    # The baselines measured in the same run are there too.
    assert "old bash function:" in text
    assert "old bot polling every 1 s" in text
    assert "reading the whole spool" in text
    assert "`ps -eo pid,user,pcpu,pmem,rss,etime,args`" in text
    printed = [line for line in p.stdout.splitlines() if line.startswith("| ")]
    assert len(printed) == len(ROWS) + 1  # the table (and its header) is printed too
