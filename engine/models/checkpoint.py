"""Zero-copy reading and streaming writing of safetensors files.

``safetensors.safe_open(...).get_tensor`` copies each tensor out of the file,
and one long-lived handle keeps every touched page mapped. Here each tensor
is a private, copy-on-write mapping of just its own byte range: reading costs
no copy, and its pages leave the process's memory when the tensor is dropped.
The writer lays out the header first and then writes each tensor at its
offset, so a child is never held whole in memory. The file format is the
documented one: an 8-byte little-endian header length, a JSON header, data.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from pathlib import Path

import torch

from ..errors import AcdcError

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
CODES = {v: k for k, v in DTYPES.items()}


class CheckpointReader:
    """One safetensors file, validated on open, read tensor by tensor."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise AcdcError(f"cannot read weights {path}: {exc.strerror}") from None
        size = os.fstat(self._fd).st_size
        head = os.pread(self._fd, 8, 0)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if n < 2 or 8 + n > size:
            self.close()
            raise AcdcError(f"cannot read weights {path}: not a safetensors file (bad header length)")
        try:
            header = json.loads(os.pread(self._fd, n, 8))
        except (UnicodeDecodeError, json.JSONDecodeError):
            self.close()
            raise AcdcError(f"cannot read weights {path}: corrupted header") from None
        self.metadata = header.pop("__metadata__", {})
        self._data_start = 8 + n
        self.entries: dict[str, dict] = header
        for name, e in header.items():
            start, end = e["data_offsets"]
            dtype = DTYPES.get(e["dtype"])
            count = 1
            for d in e["shape"]:
                count *= d
            if dtype is None or end - start != count * dtype.itemsize:
                self.close()
                raise AcdcError(f"cannot read weights {path}: tensor {name} has an inconsistent header entry")
            if self._data_start + end > size:
                self.close()
                raise AcdcError(f"cannot read weights {path}: file is truncated (tensor {name} ends past the end)")

    def keys(self) -> list[str]:
        return list(self.entries)

    def shape(self, name: str) -> list[int]:
        return list(self.entries[name]["shape"])

    def dtype(self, name: str) -> torch.dtype:
        return DTYPES[self.entries[name]["dtype"]]

    def tensor(self, name: str) -> torch.Tensor:
        """The tensor, backed by a private mapping of its bytes (no copy)."""
        e = self.entries[name]
        start, end = (self._data_start + o for o in e["data_offsets"])
        dtype = DTYPES[e["dtype"]]
        if end == start:
            return torch.empty(e["shape"], dtype=dtype)
        base = start - start % mmap.ALLOCATIONGRANULARITY
        mm = mmap.mmap(self._fd, end - base, access=mmap.ACCESS_COPY, offset=base)
        flat = torch.frombuffer(mm, dtype=dtype, count=(end - start) // dtype.itemsize, offset=start - base)
        return flat.view(e["shape"])

    def close(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> CheckpointReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _pwrite_all(fd: int, data, offset: int) -> None:
    """Writes every byte of ``data`` at ``offset``: a short write (a disk filling up) is continued, so that
    the next call raises the error (ENOSPC) instead of leaving a hole of zeros in the file."""
    view = memoryview(data).cast("B")
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:
            raise OSError(28, os.strerror(28))  # ENOSPC: nothing more could be written
        view, offset = view[n:], offset + n


class CheckpointWriter:
    """Writes a safetensors file tensor by tensor, atomically (``.partial`` then rename).

    The layout (names, dtypes, shapes) is fixed up front; every tensor must
    then be written exactly once, in any order.
    """

    def __init__(self, path: Path, layout: dict[str, tuple[torch.dtype, list[int]]],
                 metadata: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_suffix(".partial")
        header: dict[str, object] = {"__metadata__": metadata or {"format": "pt"}}
        offset = 0
        for name, (dtype, shape) in layout.items():
            nbytes = dtype.itemsize
            for d in shape:
                nbytes *= d
            header[name] = {"dtype": CODES[dtype], "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        self._layout = header
        self._data_start = 8 + len(raw)
        self._pending = set(layout)
        self.tmp.unlink(missing_ok=True)  # a new file: never written through a link left under this name
        self._fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        _pwrite_all(self._fd, struct.pack("<Q", len(raw)) + raw, 0)
        os.ftruncate(self._fd, self._data_start + offset)

    def write(self, name: str, tensor: torch.Tensor) -> None:
        entry = self._layout[name]
        if list(tensor.shape) != entry["shape"] or CODES[tensor.dtype] != entry["dtype"]:
            raise ValueError(f"tensor {name}: {tensor.dtype}{list(tensor.shape)} does not match the layout")
        data = tensor.contiguous().view(torch.uint8).reshape(-1).numpy()
        _pwrite_all(self._fd, memoryview(data).cast("B"), self._data_start + entry["data_offsets"][0])
        self._pending.discard(name)

    def commit(self) -> None:
        """Flushes and renames the file into place; every tensor must be written."""
        if self._pending:
            raise ValueError(f"tensors never written: {sorted(self._pending)[:3]}")
        os.fsync(self._fd)
        os.close(self._fd)
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        os.close(self._fd)
        self.tmp.unlink(missing_ok=True)
