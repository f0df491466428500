"""What logging out does to `pingch … &` jobs and to the watcher (README: "Logging out")."""

from __future__ import annotations

import json
import os
import pty
import signal
import time
from pathlib import Path

from harness import PINGCH, Home, wait_until


def _interactive_bash_on_a_pty(home: Home) -> tuple[int, int]:
    pid, master = pty.fork()
    if pid == 0:  # the child: an interactive login-like shell on the terminal
        env = dict(home.env, PATH=f"{Path(PINGCH).parent}:{os.environ['PATH']}", PS1="$ ")
        os.execvpe("bash", ["bash", "--norc", "-i"], env)
    return pid, master


def _hang_up(pid: int, master: int) -> None:
    os.close(master)  # the ssh connection drops: the kernel hangs up the terminal
    os.waitpid(pid, 0)


def test_dropped_session_sighups_a_backgrounded_pingch_and_the_job_is_reported(home: Home) -> None:
    pid, master = _interactive_bash_on_a_pty(home)
    os.write(master, b"pingch -t hup sleep 60 &\n")
    wait_until(lambda: any(e["ev"] == "start" for e in home.events()), 20, "the start event")
    _hang_up(pid, master)
    finish = wait_until(lambda: [e for e in home.events() if e["ev"] == "finish"], 20, "the finish")[0]
    assert finish["signal"] == signal.SIGHUP


def test_nohup_pingch_survives_a_dropped_session(home: Home) -> None:
    pid, master = _interactive_bash_on_a_pty(home)
    os.write(master, b"nohup pingch -t kept sleep 3 >/dev/null 2>&1 &\n")
    wait_until(lambda: any(e["ev"] == "start" for e in home.events()), 20, "the start event")
    _hang_up(pid, master)
    finish = wait_until(lambda: [e for e in home.events() if e["ev"] == "finish"], 20, "the finish")[0]
    assert finish["exit"] == 0 and finish["signal"] is None


def test_watcher_survives_the_hangup_of_the_session_that_started_it(home: Home) -> None:
    pid, master = _interactive_bash_on_a_pty(home)
    os.write(master, b"pingch true\n")
    watcher = wait_until(home.watcher_pids, 20, "the watcher pingch started")[0]
    _hang_up(pid, master)
    time.sleep(1)
    assert watcher in home.watcher_pids()  # a session of its own: no SIGHUP reaches it


def _logind(home: Home, text: str, linger: bool = False) -> None:
    conf = home.root / "logind.conf"
    conf.write_text(text)
    linger_dir = home.root / "linger"
    linger_dir.mkdir(exist_ok=True)
    if linger:
        (linger_dir / home.env["USER"]).touch()
    home.env.update(NOTIFYD_LOGIND_CONF=str(conf), NOTIFYD_LINGER_DIR=str(linger_dir))


def test_status_warns_when_logind_kills_user_processes_at_logout(home: Home) -> None:
    _logind(home, "[Login]\nKillUserProcesses=yes\n")
    code, out, _ = home.notifyd("status")
    assert code == 0 and "KillUserProcesses=yes" in out and "cron install" in out
    assert json.loads(home.notifyd("status", "--json")[1])["logout_warning"]


def test_status_is_quiet_about_logout_when_processes_survive_it(home: Home) -> None:
    _logind(home, "[Login]\n#KillUserProcesses=yes\nKillUserProcesses=no\n")
    assert json.loads(home.notifyd("status", "--json")[1])["logout_warning"] is None
    _logind(home, f"[Login]\nKillUserProcesses=yes\nKillExcludeUsers=root {home.env['USER']}\n")
    assert json.loads(home.notifyd("status", "--json")[1])["logout_warning"] is None
