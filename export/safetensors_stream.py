"""Write a safetensors file one tensor at a time, and read its header with size checks.

The format (https://github.com/huggingface/safetensors, README "Format"): an 8-byte little-endian
header length ``n``, ``n`` bytes of JSON ``{name: {"dtype", "shape", "data_offsets": [begin,
end]}, "__metadata__": {str: str}}`` padded with spaces to a multiple of 8, then the tensors'
bytes, offsets counted from the end of the header. Since every shape is known from the model
config before any tensor is converted, the header is written first and each tensor is streamed
after it: memory holds one converted tensor at a time, whatever the model size.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from pathlib import Path

import ml_dtypes
import numpy as np

from export.errors import PackedFileError, TruncatedFileError

DTYPE_NAMES: dict[np.dtype, str] = {
    np.dtype(np.uint8): "U8",
    np.dtype(np.int8): "I8",
    np.dtype(np.float16): "F16",
    np.dtype(np.float32): "F32",
    np.dtype(ml_dtypes.bfloat16): "BF16",
}


class SafetensorsStreamWriter:
    """``with SafetensorsStreamWriter(path, plan, metadata) as w: w.write(name, array)`` in plan
    order; ``plan`` is ``[(name, dtype, shape), ...]``."""

    def __init__(
        self,
        path: Path,
        plan: Sequence[tuple[str, np.dtype, tuple[int, ...]]],
        metadata: dict[str, str],
    ):
        self.path = Path(path)
        self._plan = [
            (name, np.dtype(dtype), tuple(int(s) for s in shape)) for name, dtype, shape in plan
        ]
        self._next = 0
        header: dict[str, object] = {"__metadata__": dict(metadata)}
        offset = 0
        for name, dtype, shape in self._plan:
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            header[name] = {
                "dtype": DTYPE_NAMES[dtype],
                "shape": list(shape),
                "data_offsets": [offset, offset + nbytes],
            }
            offset += nbytes
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")  # noqa: SIM115 (closed in close())
        self._file.write(struct.pack("<Q", len(text)) + text)

    def write(self, name: str, array: np.ndarray) -> None:
        expected_name, dtype, shape = self._plan[self._next]
        array = np.ascontiguousarray(array)
        if name != expected_name or array.dtype != dtype or array.shape != shape:
            raise ValueError(
                f"{self.path}: tensor {self._next} should be {expected_name} {dtype} {shape}, "
                f"got {name} {array.dtype} {array.shape}"
            )
        self._file.write(array.tobytes())  # little-endian hosts only, as safetensors itself
        self._next += 1

    def close(self) -> None:
        self._file.close()
        if self._next != len(self._plan):
            missing = self._plan[self._next][0]
            self.path.unlink(missing_ok=True)
            raise ValueError(f"{self.path}: writing stopped before tensor {missing}; file removed")

    def __enter__(self) -> SafetensorsStreamWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._file.close()
            self.path.unlink(missing_ok=True)


def read_header(path: Path) -> tuple[dict[str, dict], dict[str, str]]:
    """(tensor entries, metadata) of a safetensors file, after checking that the file holds every
    byte its header promises; raises TruncatedFileError or PackedFileError naming the file."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise TruncatedFileError(f"{path}: {size} bytes, too short for a safetensors header")
        (n,) = struct.unpack("<Q", head)
        if 8 + n > size:
            raise TruncatedFileError(
                f"{path}: header says {n} header bytes but the file has only {size - 8} after "
                "the length; the file is truncated"
            )
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise PackedFileError(f"{path}: header is not valid JSON ({err})") from None
    metadata = header.pop("__metadata__", None) or {}
    end = max((int(e["data_offsets"][1]) for e in header.values()), default=0)
    if 8 + n + end > size:
        raise TruncatedFileError(
            f"{path}: tensors need {8 + n + end} bytes but the file has {size}; it is truncated "
            "(re-run trilm export)"
        )
    return header, metadata


def read_tensor(path: Path, entry: dict, data_start: int) -> np.ndarray:
    """One tensor of a safetensors file as a read-only memory map (BF16 via ml_dtypes)."""
    names = {v: k for k, v in DTYPE_NAMES.items()}
    if entry["dtype"] not in names:
        raise PackedFileError(f"{path}: dtype {entry['dtype']} is not supported here")
    begin, end = (int(x) for x in entry["data_offsets"])
    dtype = names[entry["dtype"]]
    shape = tuple(entry["shape"])
    if (end - begin) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        raise PackedFileError(f"{path}: tensor of shape {shape} has {end - begin} bytes")
    if end == begin:
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=data_start + begin, shape=shape)


def data_start(path: Path) -> int:
    """Offset of the first tensor byte (8 + header length)."""
    with open(path, "rb") as f:
        return 8 + struct.unpack("<Q", f.read(8))[0]
