"""The lab's test user with a notifyd of its own: its config, its state, its watcher, its messages.

    user = SlurmUser(lab, receiver, tmp).configure(interval="1s")
    user.start_watcher()
    job = lab.submit("exit 3", env=user.env)
    body = user.message_for(job)          # the webhook's JSON body for that job
    user.stop_watcher()

Everything notifyd keeps lives under one directory in the test user's home
(NOTIFYD_STATE_DIR, NOTIFYD_CONFIG), owned by that user, so each test starts
from nothing and a watcher of another test never answers for it. The watcher
runs as the test user, as on a cluster's login node: it calls squeue and
sacct with that user's rights.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import signal
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import FAST, NO_DIGESTS, Receiver, wait_until
from slurmlab import SlurmLab


@dataclass
class SlurmUser:
    lab: SlurmLab
    receiver: Receiver
    name: str = ""
    proc: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] | None = None

    def __post_init__(self) -> None:
        self.name = self.name or f"n-{uuid.uuid4().hex[:8]}"
        self._mkdir(self.root)

    # -- where things are ----------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return self.lab.home / self.name

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def config_file(self) -> Path:
        return self.root / "notifyd.conf"

    @property
    def log(self) -> Path:
        return self.root / "watcher.out"

    @property
    def env(self) -> dict[str, str]:
        """What the user's shell would export: sbatch passes it on to the job (--export=ALL)."""
        env = {"NOTIFYD_STATE_DIR": str(self.state_dir), "NOTIFYD_CONFIG": str(self.config_file)}
        env.update(self.extra_env or {})
        return env

    # -- set-up --------------------------------------------------------------------------------
    def configure(self, slurm: str = "", **slurm_keys: str) -> SlurmUser:
        """A config with the receiver's URL, one message per job, fast polls; [slurm] keys as given."""
        keys = {"interval": "1s", "idle_interval": "2s", "timeout": "10s", **slurm_keys}
        section = "".join(f"{k} = {v}\n" for k, v in keys.items())
        text = (f"[notify]\nurls =\n    {self.receiver.url}\n{NO_DIGESTS}\n{FAST}\n"
                f"[slurm]\n{section}{slurm}")
        self._write(self.config_file, text)
        return self

    def start_watcher(self, env: dict[str, str] | None = None) -> SlurmUser:
        """`notifyd watch` as the test user, until it holds the lease."""
        out = self.log.open("ab")
        self.proc = self.lab.popen_as_user(["notifyd", "watch"], {**self.env, **(env or {})},
                                           stdout=out, stderr=subprocess.STDOUT)
        out.close()
        lease_dir = self.state_dir / "lease"

        def holds() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"the watcher exited with {self.proc.returncode}: "
                                     f"{self.log.read_text()[-3000:]}")
            return any(f"pid={self.proc.pid}\n" in f.read_text() for f in lease_dir.glob("lease.*"))

        wait_until(holds, 30, "the test user's watcher to take the lease")
        return self

    def stop_watcher(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    # -- what the user sees --------------------------------------------------------------------
    def messages(self) -> list[dict[str, Any]]:
        return self.receiver.bodies()

    def messages_for(self, job: int | str) -> list[dict[str, Any]]:
        """Every message whose title names the job as users know it: `(job 42)`, `array 42`."""
        pattern = re.compile(rf"\((?:job )?{re.escape(str(job))}\)|\barray {re.escape(str(job))}\b")
        return [b for b in self.messages() if pattern.search(str(b.get("title")))]

    def messages_about(self, job: int | str) -> list[dict[str, Any]]:
        """Every message about `job` or one of its array tasks (`(job 42_3)`)."""
        pattern = re.compile(rf"\((?:job )?{re.escape(str(job))}(?:_\d+)?\)|\barray {re.escape(str(job))}\b")
        return [b for b in self.messages() if pattern.search(str(b.get("title")))]

    def message_for(self, job: int | str, timeout: float = 60) -> dict[str, Any]:
        """The one message about `job` (waits for it; fails if there are two)."""
        try:
            wait_until(lambda: self.messages_for(job), timeout, f"a message about SLURM job {job}")
        except AssertionError as e:
            titles = [b.get("title") for b in self.messages()]
            log = self.watcher_log()[-2000:]
            raise AssertionError(f"{e}; the messages: {titles}; the log: {log}") from None
        found = self.messages_for(job)
        assert len(found) == 1, f"job {job} was told {len(found)} times: {found}"
        return found[0]

    def notifyd(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.lab.as_user(["notifyd", *args], self.env, timeout=timeout)

    def jobs_json(self) -> dict[str, list[dict[str, Any]]]:
        """`notifyd jobs --json` as the user: {"running": [...], "finished": [...]}."""
        p = self.notifyd("jobs", "--json")
        assert p.returncode == 0, p.stderr
        return dict(json.loads(p.stdout))

    def status_json(self) -> dict[str, Any]:
        p = self.notifyd("status", "--json")
        assert p.returncode == 0, p.stderr
        return dict(json.loads(p.stdout))

    def watcher_log(self) -> str:
        logs = self.state_dir / "logs"
        return "".join(f.read_text(errors="replace") for f in sorted(logs.glob("*.log*")))

    # -- files owned by the test user ----------------------------------------------------------
    def _ids(self) -> tuple[int, int]:
        pw = pwd.getpwnam(self.lab.user)
        return pw.pw_uid, pw.pw_gid

    def _mkdir(self, path: Path) -> None:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chown(path, *self._ids())

    def _write(self, path: Path, text: str) -> None:
        path.write_text(text)
        os.chown(path, *self._ids())
        path.chmod(0o600)
