"""The floor of a Python re-run local → SMB: the least a Python process does to find that nothing changed.

    .venv/bin/python -m bench.rerun_floor LOCAL_DIR smb://host:port/share/folder      # password in $SMB_PASSWORD

It imports smbprotocol (and nothing of ours: no pyarrow, no numpy), opens one session (negotiate, NTLM,
tree connect), lists the share folder with smbprotocol's own request structures, up to 8 directories'
CREATE + QUERY_DIRECTORY + QUERY_DIRECTORY + CLOSE compounds in flight, lists the local tree with
``os.scandir`` at the same time (a thread), and compares sizes and modification times (100 ns) in dicts.
No record, no manifest, no report: what is left is the interpreter, the SMB client's import and set-up,
and both listings. Prints one JSON line: the entries on each side, how many differ, and this process's
CPU seconds (user + sys, from ``resource``) at each step. docs/benchmarks.md (the SMB re-run, session 6)
quotes it beside our CLI and rclone.
"""

from __future__ import annotations

import os
import resource
import struct
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit

_T0 = time.perf_counter()
EPOCH_FILETIME = 116444736000000000
_ENTRY = struct.Struct("<I4xqqqqqqIII")
_QUERY_RESPONSE = struct.Struct("<HHI")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return round(usage.ru_utime + usage.ru_stime, 3)


def local_tree(root: str) -> dict[str, tuple[int, int]]:
    """Every file below ``root``: (size, mtime rounded down to 100 ns)."""
    out: dict[str, tuple[int, int]] = {}
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(os.path.join(root, rel_dir)) as it:
            for entry in it:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if entry.is_dir(follow_symlinks=False):
                    stack.append(rel)
                else:
                    s = entry.stat(follow_symlinks=False)
                    out[rel] = (s.st_size, s.st_mtime_ns // 100 * 100)
    return out


def smb_tree(tree, base: str, window: int = 8) -> dict[str, tuple[int, int]]:
    """Every file below ``base`` on ``tree``, listed with compounds of smbprotocol's own requests."""
    from smbprotocol.exceptions import NoMoreFiles, NoSuchFile
    from smbprotocol.file_info import FileInformationClass
    from smbprotocol.open import CreateDisposition, CreateOptions, FilePipePrinterAccessMask, Open, ShareAccess

    connection, sid, tid = tree.session.connection, tree.session.session_id, tree.tree_connect_id
    access = (FilePipePrinterAccessMask.FILE_READ_DATA | FilePipePrinterAccessMask.FILE_READ_ATTRIBUTES
              | FilePipePrinterAccessMask.FILE_READ_EA)
    share = ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE | ShareAccess.FILE_SHARE_DELETE

    def send(rel: str):
        fd = Open(tree, "\\".join(p for p in (base, rel.replace("/", "\\")) if p))
        create, _ = fd.create(2, access, 0x10, share, CreateDisposition.FILE_OPEN, CreateOptions.FILE_DIRECTORY_FILE,
                              send=False)
        first, _ = fd.query_directory("*", FileInformationClass.FILE_ID_FULL_DIRECTORY_INFORMATION, flags=1,
                                      max_output=65536, send=False)
        second, _ = fd.query_directory("*", FileInformationClass.FILE_ID_FULL_DIRECTORY_INFORMATION, flags=0,
                                       max_output=65536, send=False)
        close, _ = fd.close(send=False)
        return connection.send_compound([create, first, second, close], sid, tid, related=True)

    def buffer(request) -> bytes | None:
        try:
            body = connection.receive(request)["data"].get_value()
        except (NoMoreFiles, NoSuchFile):
            return None
        _size, offset, length = _QUERY_RESPONSE.unpack_from(body)
        return body[offset - 64:offset - 64 + length]

    out: dict[str, tuple[int, int]] = {}
    stack, sent = [""], {}
    while stack:
        rel_dir = stack.pop()
        for rel in [rel_dir, *stack[:-window:-1]]:
            if rel not in sent:
                sent[rel] = send(rel)
        create, first, second, close = sent.pop(rel_dir)
        connection.receive(create)
        data, more = buffer(first), buffer(second)
        connection.receive(close)
        if more is not None:
            raise SystemExit(f"{rel_dir}: longer than one 64 KiB buffer; the floor script lists short directories")
        offset = 0
        while data:
            step, _c, _a, mtime, _ch, size, _al, attrs, name_len, _ea = _ENTRY.unpack_from(data, offset)
            name = data[offset + 80:offset + 80 + name_len].decode("utf-16-le", "surrogatepass")
            if name not in (".", ".."):
                rel = f"{rel_dir}/{name}" if rel_dir else name
                if attrs & 0x10:
                    stack.append(rel)
                else:
                    out[rel] = (size, (mtime - EPOCH_FILETIME) * 100)
            if not step:
                break
            offset += step
    return out


def main(argv: list[str]) -> int:
    local_root, uri = argv[1], urlsplit(argv[2])
    steps = {"interpreter": _cpu()}
    from smbprotocol.connection import Connection
    from smbprotocol.session import Session
    from smbprotocol.tree import TreeConnect

    steps["import smbprotocol"] = _cpu()
    share, *folder = [p for p in uri.path.split("/") if p]
    connection = Connection(uuid.uuid4(), uri.hostname, uri.port or 445)
    connection.connect()
    session = Session(connection, os.environ.get("SMB_USER", "root"), os.environ["SMB_PASSWORD"])
    session.connect()
    tree = TreeConnect(session, rf"\\{uri.hostname}\{share}")
    tree.connect()
    steps["session"] = _cpu()
    local: dict[str, tuple[int, int]] = {}
    lister = threading.Thread(target=lambda: local.update(local_tree(local_root)))
    lister.start()
    remote = smb_tree(tree, "\\".join(folder))
    lister.join()
    steps["both listings"] = _cpu()
    changed = sum(1 for rel, seen in local.items() if remote.get(rel) != seen)
    steps["compare"] = _cpu()
    connection.disconnect()
    import json

    print(json.dumps({"local_files": len(local), "smb_files": len(remote), "to_copy": changed,
                      "cpu_s_after": steps, "wall_s_in_process": round(time.perf_counter() - _T0, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
