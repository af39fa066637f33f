"""The SMB error table: what smbprotocol and smbclient raise comes out of the location as the errors.py
vocabulary, by exception type and NTSTATUS, with the backend's own waits (credits) and reconnects."""

from __future__ import annotations

import json
import socket

import pyarrow.parquet as pq
import pytest
from smbprotocol.exceptions import SMBConnectionClosed, SMBException, SMBOSError

from airflow_datasync.errors import (
    AlreadyExistsError,
    ConnectionLostError,
    DirectoryNotEmptyError,
    LocationError,
    NotFoundError,
    PermissionDeniedError,
    TransientError,
)
from airflow_datasync.locations.base import Metadata
from airflow_datasync.locations.smb import SmbLocation
from airflow_datasync.locations.smb.error_table import (
    AuthenticationError,
    ConnectionBusyError,
    UnsupportedError,
    to_location_error,
)
from airflow_datasync.locations.smb.sessions import wait_for_credits

from .conftest import CONN_ID
from .test_smb_sync import run, smb


def test_failures_on_a_real_share_are_vocabulary_errors(smb_folder):
    dst = smb_folder()
    loc = SmbLocation(dst.uri, CONN_ID)
    with pytest.raises(NotFoundError) as missing:
        loc.open_read("no-such-file.txt")
    assert isinstance(missing.value, FileNotFoundError) and "no-such-file.txt" in str(missing.value)
    (dst.disk / "there.txt").write_bytes(b"first")
    with pytest.raises(AlreadyExistsError):
        loc.write("there.txt", iter([b"second"]), Metadata(), tag="t-0", overwrite=False)
    assert (dst.disk / "there.txt").read_bytes() == b"first"
    (dst.disk / "full").mkdir()
    (dst.disk / "full" / "inside.txt").write_bytes(b"kept")
    with pytest.raises(DirectoryNotEmptyError):
        loc.delete("full", is_dir=True)
    assert (dst.disk / "full" / "inside.txt").exists()
    loc.delete("no-such-dir", is_dir=True)  # gone already: nothing to do
    assert loc.stat("no-such-file.txt") is None


def test_a_refused_account_is_a_permission_error_that_names_it_and_is_never_retried(samba, smb_folder, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_DATASYNC_SMB_BAD_PW", json.dumps(
        {"conn_type": "datasync_smb", "host": "127.0.0.1", "port": samba.port, "login": "root",
         "password": "not-the-password"}))
    loc = SmbLocation(smb_folder().uri, "datasync_smb_bad_pw")
    with pytest.raises(AuthenticationError) as info:
        loc.stat("")
    error = info.value
    assert isinstance(error, PermissionDeniedError) and not error.retryable
    assert "'root'" in str(error) and "datasync_smb_bad_pw" in str(error) and "not-the-password" not in str(error)


def test_a_server_that_does_not_answer_is_a_connection_error(monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AIRFLOW_CONN_DATASYNC_SMB_NOBODY", json.dumps(
        {"conn_type": "datasync_smb", "host": "127.0.0.1", "login": "root", "password": "x"}))
    loc = SmbLocation(f"smb://127.0.0.1:{port}/data", "datasync_smb_nobody")
    with pytest.raises(ConnectionLostError):
        loc.stat("")
    with pytest.raises(LocationError, match=f"cannot connect to 127.0.0.1:{port}"):
        loc.check(writable=False)


@pytest.mark.parametrize(("status", "kind"), [
    (0xC0000034, NotFoundError), (0xC00000CC, NotFoundError), (0xC0000035, AlreadyExistsError),
    (0xC0000022, PermissionDeniedError), (0xC00000A2, PermissionDeniedError), (0xC0000101, DirectoryNotEmptyError),
    (0xC0000043, TransientError), (0xC0000275, UnsupportedError), (0xC000020C, ConnectionLostError),
    (0xC000006D, AuthenticationError), (0xC0009999, TransientError),
])
def test_ntstatus_table(status, kind):
    error = to_location_error(SMBOSError(status, r"\\server\share\a.txt"), "smb://server/share/a.txt", account="'u'")
    assert type(error) is kind and str(error).startswith("smb://server/share/a.txt: ")
    assert f"0x{status:08x}" in str(error)


def test_exception_types_without_a_status():
    where = "smb://server/share"
    assert type(to_location_error(SMBConnectionClosed("gone"), where)) is ConnectionLostError
    assert type(to_location_error(ConnectionResetError(104, "reset"), where)) is ConnectionLostError
    assert type(to_location_error(FileNotFoundError(2, "no"), where)) is NotFoundError
    # A bare SMBException not raised for credits: a session or tree the connection lost, unless the
    # session was being set up (a configuration the server refuses: reconnecting cannot help).
    assert type(to_location_error(SMBException("no tree"), where)) is ConnectionLostError
    assert type(to_location_error(SMBException("encryption required"), where, setting_up=True)) is LocationError
    assert to_location_error(KeyError("a bug"), where) is None  # not the client's: raised as is


def test_no_credits_left_is_waited_for(smb_folder):
    loc = SmbLocation(smb_folder().uri, CONN_ID)
    connection = loc._session().connection
    window = connection.sequence_window
    high = window["high"]
    window["high"] = window["low"]  # every credit the server granted is held by (pretend) requests in flight
    attempts = []

    def echo():
        attempts.append(1)
        if len(attempts) == 2:
            window["high"] = high  # the requests in flight returned their credits
        return loc._mapped(connection.echo, "")

    try:
        with pytest.raises(ConnectionBusyError):
            loc._mapped(connection.echo, "")
        assert wait_for_credits(echo) is not None and len(attempts) == 2
    finally:
        window["high"] = max(window["high"], high)


def test_a_file_held_open_elsewhere_is_a_verify_error_not_a_crash(smb_folder, tmp_path):
    from smbclient._io import SMBFileIO

    src = tmp_path / "src"
    src.mkdir()
    (src / "free.txt").write_bytes(b"free")
    (src / "held.txt").write_bytes(b"held")
    dst = smb_folder()
    store = tmp_path / "store"
    assert run(str(src), smb(dst), {}, store)["Status"] == "SUCCESS"
    other = SmbLocation(dst.uri, CONN_ID)  # another client: the file is open with no sharing allowed
    holder = SMBFileIO(other._unc("held.txt"), mode="rb", share_access="", **other._kw())
    holder.open()
    try:
        out = run(str(src), smb(dst), {"VerifyMode": "POINT_IN_TIME_CONSISTENT"}, store)
    finally:
        holder.close()
    assert out["Status"] == "ERROR", out
    rows = {r["path"]: r for r in pq.read_table(out["ReportUri"]).to_pylist()}
    assert rows["free.txt"]["verify_status"] == "VERIFIED"
    assert rows["held.txt"]["verify_status"] == "ERROR" and "sharing violation" in rows["held.txt"]["error"]
    assert out["FilesVerified"] == 1 and out["ErrorCode"] == "VerificationFailed"
