"""`pingch --hide-command`: a real job, a real watcher, and what a local HTTP server receives.

The README pitches it for private paths: neither the command line nor the
working directory may reach the service, while --tail still sends the lines
asked for (under the log's file name only).
"""

from __future__ import annotations

from pathlib import Path

from harness import PY, Home, Receiver, WatcherProc


def test_a_hidden_job_sends_neither_its_command_nor_its_directory(
        home: Home, receiver: Receiver, watcher: WatcherProc, tmp_path: Path) -> None:
    secret = tmp_path / "secret-project"
    secret.mkdir()
    (secret / "out.log").write_text("step 10 converged\n")
    job = home.pingch("--hide-command", "--tail", "out.log", PY, "-c", "pass", "--token=s3cret",
                      cwd=secret)
    assert job.returncode == 0, job.stderr

    (body,) = receiver.wait_for(1)
    sent = body["title"] + body["message"]
    assert body["title"] == f"✅ {Path(PY).name} finished on {home.host}"
    assert "s3cret" not in sent and "--token" not in sent
    assert "secret-project" not in sent and str(tmp_path) not in sent
    assert "last lines of out.log:" in body["message"].replace("`", "")
    assert "step 10 converged" in body["message"]
