"""A WRITE request sent without copying its payload.

smbprotocol's ``Connection._send`` copies a WRITE's data about eight times on its way out (request pack,
header pack, padding, the zeroed-signature copy signed, the signature splice, the send buffer, the TCP
frame, the partial-send slices): for multi-MiB writes those copies, not the protocol, are the client's CPU.
Here the 64-byte header and 48-byte WRITE body are packed alone, the signature is computed incrementally
over header, body and the caller's buffers, and the buffers go to the socket as they are. The rest stays
smbprotocol's: its sequence window and lock hand out message ids and take the credits, its
``Request``/``outstanding_requests`` receive the response, its transport's socket lock orders the bytes,
and an encrypted session or tree takes smbprotocol's own path (the ciphertext is a new buffer anyway).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Any

from airflow_datasync.locations.smb.error_table import ConnectionBusyError

SMB2_WRITE = 0x0009
FLAGS_SIGNED, FLAGS_DFS = 0x00000008, 0x10000000
#: StructureSize 49, DataOffset 64 + 48 (the data right after this body), Length, Offset, FileId, Channel,
#: RemainingBytes, WriteChannelInfoOffset/Length, Flags (MS-SMB2 2.2.21).
_WRITE_BODY = struct.Struct("<HHIQ16sIIHHI")
#: Signing algorithm ids (MS-SMB2 2.2.3.1.7).
HMAC_SHA256, AES_CMAC, AES_GMAC = 0, 1, 2
_DIALECT_3_0_0, _DIALECT_3_1_1 = 0x0300, 0x0311


def plain_path(fd: Any) -> bool:
    """Whether WRITEs on ``fd`` go unencrypted (encryption takes smbprotocol's own path)."""
    tree = fd.tree_connect
    return not (tree.session.encrypt_data or tree.encrypt_data)


def _signer(connection: Any, key: bytes, message_id: int):
    """An object with ``update(data)`` and ``signature()`` for a request's signature (MS-SMB2 3.1.4.1)."""
    dialect = connection.dialect
    if dialect >= _DIALECT_3_1_1 and connection.signing_algorithm_id is not None:
        algorithm = connection.signing_algorithm_id
    else:
        algorithm = AES_CMAC if dialect >= _DIALECT_3_0_0 else HMAC_SHA256
    if algorithm == AES_GMAC:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        # The nonce: message id and MessageInfo 0 (a request, not a cancel); the message is the GMAC's AAD.
        ctx = Cipher(algorithms.AES(key), modes.GCM(message_id.to_bytes(8, "little") + bytes(4))).encryptor()

        class Gmac:
            update = ctx.authenticate_additional_data

            @staticmethod
            def signature() -> bytes:
                ctx.finalize()
                return ctx.tag

        return Gmac
    if algorithm == AES_CMAC:
        from cryptography.hazmat.primitives import cmac
        from cryptography.hazmat.primitives.ciphers import algorithms

        mac = cmac.CMAC(algorithms.AES(key))

        class Cmac:
            update = mac.update

            @staticmethod
            def signature() -> bytes:
                return mac.finalize()

        return Cmac
    digest = hmac.new(key, digestmod=hashlib.sha256)

    class HmacSha256:
        update = digest.update

        @staticmethod
        def signature() -> bytes:
            return digest.digest()[:16]

    return HmacSha256


def send_write(fd: Any, offset: int, views: list[memoryview], credit_request: int):
    """Send a WRITE of ``views`` (together at most the negotiated max write size) at ``offset`` on the open
    ``fd`` without waiting; the smbprotocol ``Request`` its response arrives on. Raises
    :class:`ConnectionBusyError` when the granted credits do not cover the charge (smbprotocol's ``_send``
    refuses the same way)."""
    from smbprotocol.connection import Request
    from smbprotocol.exceptions import SMBException
    from smbprotocol.header import SMB2HeaderRequest
    from smbprotocol.open import SMB2WriteRequest

    conn, tree = fd.connection, fd.tree_connect
    session = tree.session
    length = sum(len(v) for v in views)
    if length > conn.max_write_size:
        raise SMBException(f"A write of {length} bytes exceeds the negotiated maximum {conn.max_write_size}")
    charge = (max(0, length - 1) // 65536 + 1) if conn.supports_multi_credit else 0
    conn._check_worker_running()
    with conn.sequence_lock:  # message ids and credits as smbprotocol's _send takes them
        window = conn.sequence_window
        if charge > window["high"] - window["low"]:
            raise ConnectionBusyError(f"a WRITE needs {charge} credits, the connection has "
                                      f"{window['high'] - window['low']}: the others ride on requests in flight")
        message_id = window["low"]
        window["low"] += charge if charge > 0 else 1

    header = SMB2HeaderRequest()
    for field, value in (("credit_charge", charge), ("command", SMB2_WRITE), ("credit_request", credit_request),
                         ("message_id", message_id), ("session_id", session.session_id),
                         ("tree_id", tree.tree_connect_id)):
        header[field] = value
    flags = FLAGS_DFS if tree.is_dfs_share else 0
    sign = session.signing_required and session.signing_key
    if sign:
        flags |= FLAGS_SIGNED
    header["flags"] = flags
    # Outstanding from the moment its credits are taken: a compound's credit check reads "nothing outstanding
    # and too few credits" as a window that nothing will widen (compound._reserve).
    request = Request(header, SMB2WriteRequest, conn, session_id=session.session_id)
    conn.outstanding_requests[message_id] = request
    transport = conn.transport
    try:
        b_header = header.pack()
        body = _WRITE_BODY.pack(49, 64 + 48, length, offset, fd.file_id, 0, 0, 0, 0, 0)
        if sign:
            signer = _signer(conn, session.signing_key, message_id)
            signer.update(b_header)
            signer.update(body)
            for v in views:
                signer.update(v)
            signature = signer.signature()
            header["signature"] = signature
            b_header = b_header[:48] + signature
        frame = (64 + 48 + length).to_bytes(4, "big") + b_header + body
        with transport._sock_lock:
            sock = transport._sock
            sock.sendall(frame)
            for v in views:
                sock.sendall(v)
    except BaseException:
        # Part of a frame may have gone out: nothing else can follow on this socket.
        conn.outstanding_requests.pop(message_id, None)
        try:
            transport.close()
        except OSError:
            pass
        raise
    return request
