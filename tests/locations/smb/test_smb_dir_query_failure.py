"""A directory listing whose query the server refuses after opening the directory: every answer of the
compound is read and the directory's handle closed before the failure reaches the scan, so no request stays
outstanding on the connection and no handle open on the server. A real smbd."""

from __future__ import annotations

import pytest
from smbprotocol.exceptions import SMBResponseException

from airflow_datasync.locations.smb import SmbLocation, dir_query
from airflow_datasync.locations.smb.dir_query import TreeLister

from .conftest import CONN_ID
from .test_smb_compound_read import seed

#: An output buffer too small for one entry: smbd refuses the query (STATUS_INFO_LENGTH_MISMATCH).
TOO_SMALL = 8


def test_a_refused_query_leaves_nothing_outstanding(smb_folder, monkeypatch):
    folder = smb_folder()
    seed(folder.disk, {"a.bin": b"a"})
    loc = SmbLocation(folder.uri, CONN_ID)
    tree, _name = loc._tree("")
    monkeypatch.setattr(dir_query, "FIRST_BUFFER", TOO_SMALL)
    with pytest.raises(SMBResponseException):
        TreeLister(tree).entries(loc._unc(), loc._kw())
    assert not tree.session.connection.outstanding_requests
