"""One file written in byte ranges by several writers (a striped file, see ``phases/stripes.py``).

A destination with :attr:`Capabilities.ranged_writes` starts such a write once (:meth:`Location.begin_ranged`:
a temporary created at the full size, or an S3 multipart upload), lets each range be written on its own,
by any process on any worker (:meth:`Location.write_range`), and publishes the file only when every range
is there (:meth:`Location.commit_ranged`, with the whole file's CRC64NVME combined from the ranges'), or
drops it (:meth:`Location.abort_ranged`). What travels between those calls is a :class:`RangedWrite` and
the :class:`RangeWritten` of each range, both plain data kept in the execution's store.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_datasync import checksum

#: S3's multipart limits, which every striped write keeps (the other backends have none of their own).
MAX_PARTS = 10_000
MIN_PART_BYTES = 5 * 1024**2
MAX_PART_BYTES = 5 * 1024**3


@dataclass(frozen=True)
class RangedWrite:
    """A write in ranges under way: what each range writer and the final step need to find it again."""

    #: The file's final path, relative to the destination root.
    path: str
    #: The file's size: the ranges cover ``[0, size)``, each ``stripe_bytes`` long but the last.
    size: int
    stripe_bytes: int
    #: The writer tag in the temporary's name or the upload's records (the file's own shard).
    tag: str
    #: File systems and SMB: the temporary's path, relative to the root.
    temp: str | None = None
    #: S3: the multipart upload's id and the size of its parts (each range holds whole parts, numbered
    #: from its offset: range ``i`` owns part numbers ``i * parts_per_range + 1`` onwards).
    upload_id: str | None = None
    part_bytes: int | None = None
    parts_per_range: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RangedWrite:
        return cls(**data)

    def part_numbers(self, offset: int, length: int) -> list[tuple[int, int, int]]:
        """S3: ``(number, start, length)`` of the parts of the range at ``offset``: whole ``part_bytes`` parts,
        the last one taking the rest of the range (so none is below ``part_bytes``, S3's minimum but for
        the object's last part)."""
        assert self.part_bytes and self.parts_per_range, "only an upload in parts has part numbers"
        count = min(self.parts_per_range, max(1, length // self.part_bytes))
        first = (offset // self.stripe_bytes) * self.parts_per_range + 1
        out = []
        for k in range(count):
            start = k * self.part_bytes
            out.append((first + k, offset + start, (length - start) if k == count - 1 else self.part_bytes))
        return out


@dataclass(frozen=True)
class RangeWritten:
    """What one range writer put at the destination: its bytes, their CRC64NVME (as an int, combined by the
    final step) and, for an upload in parts, each part's ``(number, ETag, CRC64NVME base64)``."""

    offset: int
    length: int
    crc: int
    parts: tuple[tuple[int, str, str | None], ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {"offset": self.offset, "length": self.length, "crc": f"{self.crc:016x}",
                "parts": [list(p) for p in self.parts]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RangeWritten:
        return cls(int(data["offset"]), int(data["length"]), int(data["crc"], 16),
                   tuple((int(n), str(e), c) for n, e, c in data.get("parts") or ()))


def whole_crc(ranges: Sequence[RangeWritten]) -> int:
    """The whole file's CRC64NVME from its ranges' (in offset order), without reading a byte again."""
    value = 0
    for written in sorted(ranges, key=lambda r: r.offset):
        value = checksum.combine(value, written.crc, written.length)
    return value


def crc_base64(value: int) -> str:
    """A CRC64NVME as S3 writes it in ``x-amz-checksum-crc64nvme``."""
    return base64.b64encode(value.to_bytes(8, "big")).decode()


def missing_ranges(ranged: RangedWrite, done: Sequence[RangeWritten]) -> list[int]:
    """Offsets of the ranges of ``ranged`` that ``done`` does not cover exactly."""
    have = {(r.offset, r.length) for r in done}
    out = []
    for offset in range(0, max(ranged.size, 1), ranged.stripe_bytes):
        if (offset, min(ranged.stripe_bytes, ranged.size - offset)) not in have:
            out.append(offset)
    return out
