"""Start a private Samba ``smbd`` on 127.0.0.1 for the SMB tests (and stop it).

Everything smbd writes lives under one temporary directory: its config, lock/state/cache/pid/private/ncalrpc
dirs and the shares. The Unix account must exist (root here); its SMB password lives in a private tdbsam.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = ("smbd (Debian package 'samba') is not installed; `make test` installs it "
                "(apt-get install -y --no-install-recommends samba)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SambaServer:
    root: Path
    port: int
    user: str
    password: str
    shares: dict[str, Path]
    process: subprocess.Popen | None = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_samba(root: Path, user: str = "root", password: str = "Sm8-test-pass!w0rd",
                extra_global: str = "") -> SambaServer:
    """A private smbd under ``root``; ``extra_global``: more ``[global]`` lines (e.g. a credit limit)."""
    smbd = shutil.which("smbd") or ("/usr/sbin/smbd" if os.path.exists("/usr/sbin/smbd") else None)
    smbpasswd = shutil.which("smbpasswd") or "/usr/bin/smbpasswd"
    if smbd is None:
        raise RuntimeError(INSTALL_HINT)
    port = free_port()
    dirs = {name: root / name for name in ("lock", "state", "cache", "pid", "private", "ncalrpc", "log")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    shares = {"data": root / "share-data", "other": root / "share-other"}
    for d in shares.values():
        d.mkdir(parents=True, exist_ok=True)
    share_text = "".join(
        f"\n[{name}]\n   path = {path}\n   read only = no\n   browseable = yes\n   create mask = 0644\n"
        for name, path in shares.items())
    conf = root / "smb.conf"
    conf.write_text(f"""[global]
   workgroup = WORKGROUP
   server role = standalone server
   interfaces = 127.0.0.1
   bind interfaces only = yes
   smb ports = {port}
   lock directory = {dirs['lock']}
   state directory = {dirs['state']}
   cache directory = {dirs['cache']}
   pid directory = {dirs['pid']}
   private dir = {dirs['private']}
   ncalrpc dir = {dirs['ncalrpc']}
   log file = {dirs['log']}/log.%m
   passdb backend = tdbsam:{dirs['private']}/passdb.tdb
   server min protocol = SMB2_02
   disable netbios = yes
   load printers = no
   printing = bsd
   printcap name = /dev/null
   disable spoolss = yes
   map archive = yes
   store dos attributes = yes
{extra_global}{share_text}""")
    subprocess.run([smbpasswd, "-c", str(conf), "-s", "-a", user], input=f"{password}\n{password}\n",
                   text=True, check=True, capture_output=True)
    with open(root / "smbd.out", "wb") as log:  # smbd keeps its own copy of the descriptor
        proc = subprocess.Popen([smbd, "--foreground", "--no-process-group", "--debug-stdout", "-s", str(conf)],
                                stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # smbd signals its whole process group on exit
    server = SambaServer(root, port, user, password, shares, proc)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"smbd exited with {proc.returncode}: {(root / 'smbd.out').read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"smbd did not listen on 127.0.0.1:{port}: {(root / 'smbd.out').read_text()[-2000:]}") from None
            time.sleep(0.05)
