"""Lean packers for the requests a small-file write sends, and lean readers of their responses.

smbprotocol builds each request as a Structure of Field objects (about 40 µs of CPU per request, 5 per
small file); these build the same bytes with one ``struct.pack`` each. They are handed to smbprotocol's
``Connection.send_compound`` like its own messages: ``COMMAND``, ``pack()``, ``len()`` and, for a WRITE,
the ``length``/``write_channel_info_length`` items its credit-charge calculation reads — so message ids,
credits, signing and encryption stay smbprotocol's. Layouts: MS-SMB2 2.2.13 (CREATE), 2.2.21 (WRITE),
2.2.19 (READ), 2.2.39 (SET_INFO), 2.2.15 (CLOSE); MS-FSCC 2.4.7 (FileBasicInformation), 2.4.42.2 (FileRenameInformation
for SMB2). ``tests/locations/smb/test_smb_compound_write.py`` checks every one byte for byte against
smbprotocol's.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

#: Files up to this size are written or read in one compound (capped by the negotiated max write/read size).
SMALL_FILE_BYTES = 1 << 20

SMB2_CREATE, SMB2_CLOSE, SMB2_READ, SMB2_WRITE, SMB2_SET_INFO = 0x0005, 0x0006, 0x0008, 0x0009, 0x0011
#: The file id a related compound's requests name to mean "the one the create before returned".
RELATED_FILE_ID = b"\xff" * 16

INFO_FILE, INFO_SECURITY = 0x01, 0x03
CLOSE_POSTQUERY_ATTRIB = 0x0001
FILE_BASIC_INFORMATION, FILE_RENAME_INFORMATION = 4, 10

_HEADER = 64
_CREATE = struct.Struct("<HBBIQQIIIIIHHII")  # 56 bytes, the name follows
_WRITE = struct.Struct("<HHIQ16sIIHHI")  # 48 bytes, the data follows
_READ = struct.Struct("<HBBIQ16sIIIHHB")  # 49 bytes: the one-byte buffer a READ without channel info carries
_SET_INFO = struct.Struct("<HBBIHHI16s")  # 32 bytes, the buffer follows
_CLOSE = struct.Struct("<HHI16s")
_QUERY_DIRECTORY = struct.Struct("<HBBI16sHHI")  # 32 bytes, the search pattern follows
_BASIC = struct.Struct("<QQQQII")
_RENAME = struct.Struct("<B7xQI")
_CREATE_RESPONSE = struct.Struct("<HBBIQQQQQQII16s")  # up to the file id
_WRITE_COUNT = struct.Struct("<4xI")
#: A READ response's body up to its data: StructureSize (17), DataOffset (from the header's start),
#: Reserved, DataLength (MS-SMB2 2.2.20).
READ_RESPONSE = struct.Struct("<HBxI")


class _Value:
    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value

    def get_value(self) -> int:
        return self.value


class LeanRequest:
    """A request body packed once; smbprotocol's ``_send`` puts its header in front.

    smbprotocol keeps ``type(message)`` to rehydrate a sent request (``Request.get_message_data``, which its
    symlink handling calls): each subclass, called with no arguments, gives smbprotocol's own structure."""

    __slots__ = ("_body", "_items")
    COMMAND = 0
    _SMBPROTOCOL = ""  # the smbprotocol.open class of the same request

    def __new__(cls, *args: object):
        if not args:
            import smbprotocol.open

            return getattr(smbprotocol.open, cls._SMBPROTOCOL)()
        return super().__new__(cls)

    def __init__(self, body: bytes, items: dict[str, int] | None = None) -> None:
        self._body = body
        self._items = items

    def pack(self) -> bytes:
        return self._body

    def __len__(self) -> int:
        return len(self._body)

    def __getitem__(self, name: str) -> _Value:
        return _Value(self._items[name])  # only what the credit charge reads


# Named as smbprotocol's classes: request counters and logs read the same names for the same requests.
class SMB2CreateRequest(LeanRequest):
    __slots__ = ()
    COMMAND, _SMBPROTOCOL = SMB2_CREATE, "SMB2CreateRequest"


class SMB2WriteRequest(LeanRequest):
    __slots__ = ()
    COMMAND, _SMBPROTOCOL = SMB2_WRITE, "SMB2WriteRequest"


class SMB2ReadRequest(LeanRequest):
    __slots__ = ()
    COMMAND, _SMBPROTOCOL = SMB2_READ, "SMB2ReadRequest"


class SMB2SetInfoRequest(LeanRequest):
    __slots__ = ()
    COMMAND, _SMBPROTOCOL = SMB2_SET_INFO, "SMB2SetInfoRequest"


class SMB2CloseRequest(LeanRequest):
    __slots__ = ()
    COMMAND, _SMBPROTOCOL = SMB2_CLOSE, "SMB2CloseRequest"


SMB2_QUERY_DIRECTORY = 0x000E


class SMB2QueryDirectoryRequest(LeanRequest):
    """A directory listing's request (MS-SMB2 2.2.33); its credit charge reads ``buffer`` and
    ``output_buffer_length``."""

    __slots__ = ()
    COMMAND, _SMBPROTOCOL = SMB2_QUERY_DIRECTORY, "SMB2QueryDirectoryRequest"

    def __getitem__(self, name: str) -> Any:
        if name == "buffer":  # the search pattern
            return self._body[_QUERY_DIRECTORY.size:]
        return super().__getitem__(name)


def create_request(name: str, desired_access: int, file_attributes: int, share_access: int, disposition: int,
                   options: int, impersonation: int = 2) -> LeanRequest:
    buffer = name.encode("utf-16-le") if name else b"\x00\x00"
    body = _CREATE.pack(57, 0, 0, impersonation, 0, 0, desired_access, file_attributes, share_access, disposition,
                        options, _HEADER + 56, len(buffer) if name else 0, 0, 0)
    return SMB2CreateRequest(body + buffer)


def write_request(data: bytes, offset: int = 0, file_id: bytes = RELATED_FILE_ID) -> LeanRequest:
    body = _WRITE.pack(49, _HEADER + 48, len(data), offset, file_id, 0, 0, 0, 0, 0)
    return SMB2WriteRequest(body + data, {"length": len(data), "write_channel_info_length": 0})


def read_request(length: int, offset: int = 0, file_id: bytes = RELATED_FILE_ID) -> LeanRequest:
    """A READ of ``length`` bytes at ``offset`` (padding 0x50 asks for the data right after the response body)."""
    body = _READ.pack(49, 0x50, 0, length, offset, file_id, 0, 0, 0, 0, 0, 0)
    return SMB2ReadRequest(body, {"length": length, "read_channel_info_length": 0})


def set_info_request(info_type: int, info_class: int, buffer: bytes, additional: int = 0,
                     file_id: bytes = RELATED_FILE_ID) -> LeanRequest:
    body = _SET_INFO.pack(33, info_type, info_class, len(buffer), _HEADER + 32, 0, additional, file_id)
    return SMB2SetInfoRequest(body + buffer)


def close_request(file_id: bytes = RELATED_FILE_ID, *, attributes: bool = False) -> LeanRequest:
    """A CLOSE; with ``attributes`` it asks for the file's times, size and attributes after (POSTQUERY_ATTRIB)."""
    return SMB2CloseRequest(_CLOSE.pack(24, CLOSE_POSTQUERY_ATTRIB if attributes else 0, 0, file_id))


def basic_info(creation: int, atime: int, mtime: int, attributes: int) -> bytes:
    """FileBasicInformation (0 leaves a field as it is; the change time always is)."""
    return _BASIC.pack(creation, atime, mtime, 0, attributes, 0)


def rename_info(target: str, replace: bool) -> bytes:
    name = target.encode("utf-16-le")
    return _RENAME.pack(1 if replace else 0, 0, len(name)) + name


def query_directory_request(info_class: int, *, restart: bool, output_size: int, pattern: str = "*",
                            file_id: bytes = RELATED_FILE_ID) -> LeanRequest:
    """A QUERY_DIRECTORY of ``pattern`` answering ``info_class`` entries, from the start (``restart``) or on."""
    name = pattern.encode("utf-16-le")
    body = _QUERY_DIRECTORY.pack(33, info_class, 0x01 if restart else 0, 0, file_id, _HEADER + 32, len(name),
                                 output_size)
    return SMB2QueryDirectoryRequest(body + name, {"output_buffer_length": output_size})


class CreateResponse(NamedTuple):
    """What a CREATE response carries (times as FILETIMEs)."""

    file_id: bytes
    creation: int
    atime: int
    mtime: int
    end_of_file: int
    attributes: int


def parse_create(body: bytes) -> CreateResponse:
    """A CREATE response's file id, times, size and attributes, read with one unpack."""
    f = _CREATE_RESPONSE.unpack_from(body)
    return CreateResponse(f[12], f[4], f[5], f[6], f[9], f[10])


def take_handle(fd: Any, body: bytes) -> CreateResponse:
    """What smbprotocol's own create receiver keeps of a CREATE response on the open ``fd`` (its file id,
    attributes, the session's open table), without its Structure parse."""
    created = parse_create(body)
    fd.file_id, fd.file_attributes = created.file_id, created.attributes
    fd._connected = True
    fd.tree_connect.session.open_table[fd.file_id] = fd
    return created


def parse_write(body: bytes) -> int:
    """How many bytes a WRITE response says were written."""
    return _WRITE_COUNT.unpack_from(body)[0]
