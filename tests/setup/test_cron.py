"""`notifyd cron`: the real crontab command, the user's table left exactly as it was."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import needs
import pytest
from harness import CRONTAB, NOTIFYD, REPO, Home
from harness import read_crontab as _read
from harness import write_crontab as _write

BEGIN = "# >>> notifyd"


@needs.crontab
def test_install_twice_gives_one_block_with_absolute_paths(home: Home, crontab: None) -> None:
    _write("MAILTO=\"\"\n0 3 * * * /usr/bin/true\n")
    assert home.notifyd("cron", "install")[0] == 0
    code, out, _ = home.notifyd("cron", "install")
    assert code == 0 and "already installed" in out
    table = _read()
    assert table is not None and table.count(BEGIN) == 1
    snapshot_line = next(line for line in table.splitlines() if "snapshot" in line)
    assert snapshot_line.startswith("* * * * * ")
    # An absolute interpreter of this venv (python or python3, as the script's shebang says).
    assert f" {Path(sys.executable).parent}/python" in snapshot_line
    assert " -m notifyd snapshot " in snapshot_line
    assert f"NOTIFYD_HOST={home.host}" in snapshot_line
    assert any(line.startswith("*/5 * * * * ") and line.endswith("ensure >/dev/null 2>&1")
               for line in table.splitlines())


@needs.crontab
def test_remove_restores_the_previous_crontab_byte_for_byte(home: Home, crontab: None) -> None:
    before = "# my jobs\n\n15  4 * * 1-5\t/usr/bin/backup --all   \n@reboot /usr/bin/true\n"
    _write(before)
    assert home.notifyd("cron", "install")[0] == 0
    assert _read() != before
    code, out, _ = home.notifyd("cron", "remove")
    assert code == 0 and "removed" in out
    assert _read() == before


@needs.crontab
def test_remove_after_install_on_an_empty_crontab_leaves_no_crontab(home: Home, crontab: None) -> None:
    _write(None)
    assert home.notifyd("cron", "install")[0] == 0
    assert home.notifyd("cron", "remove")[0] == 0
    assert _read() is None


@needs.crontab
def test_show_prints_the_installed_block_or_what_install_would_add(home: Home, crontab: None) -> None:
    _write(None)
    code, out, _ = home.notifyd("cron", "show")
    assert code == 0 and "not installed" in out and BEGIN in out
    home.notifyd("cron", "install", "--no-snapshot")
    code, out, _ = home.notifyd("cron", "show")
    assert out.startswith(BEGIN) and "snapshot" not in out.replace("notifyd cron", "")
    assert "ensure" in out


@needs.crontab
def test_installed_snapshot_line_works_when_run_the_way_cron_runs_it(
        home: Home, crontab: None) -> None:
    _write(None)
    home.notifyd("cron", "install")
    table = _read()
    assert table is not None
    line = next(x for x in table.splitlines() if "snapshot" in x)
    command = line.split(" ", 5)[5].replace(" snapshot ", " snapshot --interval 0.2 ")
    # cron's environment: HOME, LOGNAME, SHELL=/bin/sh, PATH=/usr/bin:/bin and nothing else.
    env = {"HOME": home.env["HOME"], "LOGNAME": "tester", "SHELL": "/bin/sh",
           "PATH": "/usr/bin:/bin"}
    subprocess.run(["/bin/sh", "-c", command], env=env, check=True, timeout=60)
    assert (home.state_dir / "procs" / f"{home.host}.json").is_file()


def test_missing_crontab_command_is_a_clear_error(home: Home) -> None:
    home.env["PATH"] = str(Path(NOTIFYD).parent)  # no crontab on it
    code, _, err = home.notifyd("cron", "install")
    assert code == 1
    assert "crontab command is not installed" in err and "apt install cron" in err
    assert "Traceback" not in err


SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture
def denied_user() -> Iterator[tuple[str, Path]]:
    """A throwaway user listed in /etc/cron.deny, with a home of its own."""
    # Debian's cron never refuses root, so the refusal needs another user.
    if os.geteuid() != 0 or CRONTAB is None or shutil.which("useradd") is None:
        pytest.skip(reason="needs root, useradd and crontab to create a user that cron refuses")
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip(reason=f"needs {SYSTEM_PYTHON} for the throwaway user (the venv's python is root's)")
    name = f"nfd{os.getpid() % 100000}"
    subprocess.run(["useradd", "--no-create-home", name], check=True)
    home_dir = Path(tempfile.mkdtemp(prefix="notifyd-cron-"))
    home_dir.chmod(0o755)
    os.chown(home_dir, pwd.getpwnam(name).pw_uid, pwd.getpwnam(name).pw_gid)
    deny = Path("/etc/cron.deny")
    saved = deny.read_bytes() if deny.exists() else None
    deny.write_bytes((saved or b"") + f"{name}\n".encode())
    try:
        yield name, home_dir
    finally:
        if saved is None:
            deny.unlink()
        else:
            deny.write_bytes(saved)
        subprocess.run(["userdel", name], check=False)
        shutil.rmtree(home_dir, ignore_errors=True)


def test_user_refused_by_cron_gets_crontabs_reason_and_where_to_look(
        denied_user: tuple[str, Path]) -> None:
    name, home_dir = denied_user
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    # The interpreter of the venv lives under /root, out of this user's reach;
    # notifyd.cron needs only the standard library, so the system python runs it.
    script = ("from notifyd.setup import cron\nfrom notifyd.errors import NotifydError\n"
              "try:\n    cron.install()\nexcept NotifydError as e:\n    print(e.message)\n")
    p = subprocess.run([runuser, "-u", name, "--", SYSTEM_PYTHON, "-c", script],
                       env={"HOME": str(home_dir), "PATH": "/usr/bin:/bin", "USER": name,
                            "PYTHONPATH": str(REPO)},
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "crontab -l refused" in p.stdout and "not allowed" in p.stdout
    assert "/etc/cron.deny" in p.stdout


@needs.crontab
def test_install_collapses_two_hand_copied_blocks_into_one(home: Home, crontab: None) -> None:
    assert home.notifyd("cron", "install")[0] == 0
    table = _read()
    assert table is not None
    block = table
    _write("0 1 * * * /usr/bin/true\n" + block + "0 2 * * * /usr/bin/true\n" + block)
    assert home.notifyd("cron", "install")[0] == 0
    after = _read()
    assert after is not None and after.count(BEGIN) == 1
    assert home.notifyd("cron", "remove")[0] == 0
    assert _read() == "0 1 * * * /usr/bin/true\n0 2 * * * /usr/bin/true\n"


@needs.crontab
def test_percent_in_a_carried_path_is_escaped_for_cron(home: Home, crontab: None) -> None:
    _write(None)
    home.env["NOTIFYD_CONFIG"] = str(home.root / "100%lab" / "notifyd.conf")
    assert home.notifyd("cron", "install")[0] == 0
    table = _read()
    assert table is not None
    assert "100\\%lab" in table and "100%lab" not in table.replace("100\\%lab", "")


@needs.crontab
def test_cron_lines_start_from_root_so_home_files_cannot_shadow_modules(
        home: Home, crontab: None) -> None:
    _write(None)
    (home.root / "typer.py").write_text('raise SystemExit("shadowed")\n')
    home.notifyd("cron", "install")
    table = _read()
    assert table is not None
    line = next(x for x in table.splitlines() if "snapshot" in x)
    command = line.split(" ", 5)[5].replace(" snapshot ", " snapshot --interval 0.2 ")
    env = {"HOME": home.env["HOME"], "LOGNAME": "tester", "SHELL": "/bin/sh", "PATH": "/usr/bin:/bin"}
    subprocess.run(["/bin/sh", "-c", f"cd && {command}"], env=env, check=True, timeout=60)
    assert (home.state_dir / "procs" / f"{home.host}.json").is_file()
