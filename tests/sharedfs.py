"""Several hosts, one home: a loopback sshd exporting one directory, mounted N times with sshfs.

Each mount is one simulated host with its own HOME (the same directory seen
through its own mount, so its own client cache) and NOTIFYD_HOST. sshfs is a
network filesystem with the properties that matter here (measured in
shared/facts.md): fcntl locks do not exclude across mounts, O_APPEND from two
mounts corrupts lines, exclusive create and link(2) fail with EEXIST on the
second mount, and attributes are cached per mount.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"


def missing() -> str:
    """What this machine lacks for the harness ('' when nothing)."""
    lacks = [name for name, ok in (
        ("sshfs", shutil.which("sshfs")), ("sshd (openssh-server)", os.access(SSHD, os.X_OK)),
        ("ssh-keygen (openssh-client)", shutil.which("ssh-keygen")),
        ("fusermount3 (fuse3)", shutil.which("fusermount3")), ("/dev/fuse", os.path.exists("/dev/fuse")),
    ) if not ok]
    return ", ".join(lacks)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SshServer:
    """sshd on 127.0.0.1 with its own port, keys and config; never the system's."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.client_key = root / "clientkey"
        for key in ("hostkey", "clientkey"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / key)],
                           check=True)
        auth = root / "authorized_keys"
        auth.write_text((root / "clientkey.pub").read_text())
        auth.chmod(0o600)
        config = root / "sshd_config"
        config.write_text(
            f"ListenAddress 127.0.0.1\nPort {self.port}\nHostKey {root / 'hostkey'}\n"
            f"AuthorizedKeysFile {auth}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            f"PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
            f"PidFile {root / 'sshd.pid'}\nSubsystem sftp internal-sftp\nMaxStartups 100\n"
            f"MaxSessions 100\n")
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
        self.proc = subprocess.Popen([SSHD, "-D", "-f", str(config), "-E", str(root / "sshd.log")])
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"sshd did not start: {(root / 'sshd.log').read_text()}") from None
                time.sleep(0.05)

    def mount(self, export: Path, mountpoint: Path) -> None:
        mountpoint.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["sshfs", "-p", str(self.port), "-o",
             f"IdentityFile={self.client_key},StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null,"
             "BatchMode=yes,LogLevel=ERROR",
             f"root@127.0.0.1:{export}", str(mountpoint)], check=True, timeout=30)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def unmount(mountpoint: Path) -> None:
    subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True, check=False)


@pytest.fixture(scope="session")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    lacking = missing()
    if lacking:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the shared-home tests, but this machine lacks: {lacking}")
        pytest.skip(reason=f"shared-home harness needs {lacking} (tests/system-deps.sh installs them)")
    server = SshServer(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()
