"""Block configurations measured per device: a small table per GPU model, looked up by shape.

``benchmarks/kernels.py --tune --table PATH`` times a few configurations for every (layout, M, K,
N) point it benchmarks and writes the fastest to ``kernels_pallas/tuned/<device>.json``, into
the entries already there (:func:`merge_tables`: a point measured again is replaced, the others
are kept):

    {"device": "NVIDIA H100 80GB HBM3", "measured": "<date>, jax <version>",
     "entries": [{"layout": "2bit", "m": 1, "k": 8192, "n": 28672, "config": {...}}, ...]}

:func:`tuned_config` answers for the running device: the entry of the same layout, K and N whose
M is the smallest measured M at or above the call's (M is padded to the MMA tile anyway), or
``None`` (then ``default_config``'s rules apply) for a shape, an M or a device not measured.

An entry may also say ``"mosaic"``: the Mosaic kernel's fastest tiling at that point
(``mosaic_matmul.py``, on the packed matrix transposed) where it beat the entry's Triton
configuration in the same run, or ``null`` where it was measured and lost.
:func:`tuned_mosaic_config` reads it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

from kernels_pallas.mosaic_matmul import MosaicConfig
from kernels_pallas.triton_matmul import BlockConfig

TUNED_DIR = Path(__file__).resolve().parent / "tuned"


def table_path(device_kind: str, directory: Path = TUNED_DIR) -> Path:
    """``tuned/<device kind, lower case, spaces as dashes>.json``."""
    return directory / (device_kind.strip().lower().replace(" ", "-") + ".json")


Table = dict[tuple[str, int, int], list[tuple[int, object]]]
"""(layout, K, N) -> [(measured M, value)] sorted by M."""


def _by_shape(path: Path, value) -> Table:
    """The table at ``path`` grouped by shape: ``value(entry)`` for each entry, or the entry
    left out where it returns ``_ABSENT``."""
    table: Table = {}
    entries = json.loads(path.read_text())["entries"] if path.is_file() else []
    for entry in entries:
        v = value(entry)
        if v is not _ABSENT:
            key = (entry["layout"], int(entry["k"]), int(entry["n"]))
            table.setdefault(key, []).append((int(entry["m"]), v))
    for rows in table.values():
        rows.sort(key=lambda row: row[0])
    return table


_ABSENT = object()
_BLOCK_FIELDS = {f.name for f in dataclasses.fields(BlockConfig)}


@functools.cache
def _load(path: Path) -> Table:
    return _by_shape(
        path, lambda e: BlockConfig(**{k: v for k, v in e["config"].items() if k in _BLOCK_FIELDS})
    )


@functools.cache
def _load_mosaic(path: Path) -> Table:
    def value(entry: dict):
        if "mosaic" not in entry:
            return _ABSENT
        return MosaicConfig(**entry["mosaic"]) if entry["mosaic"] else None

    return _by_shape(path, value)


def tuned_config(
    layout: str, m: int, k: int, n: int, device_kind: str, directory: Path = TUNED_DIR
) -> BlockConfig | None:
    """The measured configuration for this point on ``device_kind``, or None."""
    for measured_m, config in _load(table_path(device_kind, directory)).get((layout, k, n), []):
        # block_m follows M (16-row tiles up to M = 16, 64 above): never borrow across that line
        if measured_m >= m and (m > 16) == (measured_m > 16):
            return config
    return None


def tuned_mosaic_config(
    layout: str, m: int, k: int, n: int, device_kind: str, directory: Path = TUNED_DIR
) -> tuple[bool, MosaicConfig | None]:
    """``(measured, config)`` for the Mosaic kernel at this point on ``device_kind``: from the
    entry of the smallest measured M at or above the call's, ``config`` None where the Triton
    kernels won there; ``(False, None)`` where no entry says anything, and below the smallest
    measured M (M = 1 is no M = 16: the CUDA-core kernels take it)."""
    rows = _load_mosaic(table_path(device_kind, directory)).get((layout, k, n), [])
    if not rows or m < rows[0][0]:
        return False, None
    for measured_m, config in rows:
        if measured_m >= m:
            return True, config
    return False, None


def table_from_benchmark(result: dict) -> dict:
    """The table of a ``benchmarks/kernels.py`` result (its ``rows``' fastest configs)."""
    entries = []
    for row in result["rows"]:
        for layout, key in (("2bit", "2bit"), ("1.6bit", "1p6bit")):
            config = row.get(f"{key}_config")
            mosaic_measured = bool(row.get(f"{key}_mosaic_tried"))
            tuned = len(row.get(f"{key}_tried", [])) > 1 or mosaic_measured
            if config and tuned:  # tuned points only (or the Mosaic kernel's)
                entry = dict(layout=layout, m=row["m"], k=row["k"], n=row["n"], config=config)
                if mosaic_measured:
                    t = row.get(f"{key}_mosaic_s")
                    wins = t is not None and t < row[f"{key}_s"]
                    entry["mosaic"] = row[f"{key}_mosaic_config"] if wins else None
                entries.append(entry)
    return {
        "device": result["device"],
        "measured": f"{result['date']}, jax {result['jax']}",
        "entries": entries,
    }


def merge_tables(old: dict | None, new: dict) -> dict:
    """``new``'s entries over ``old``'s (same device): a (layout, M, K, N) point in both takes
    ``new``'s configuration; ``measured`` lists both tables' dates."""
    if old is None:
        return new
    if old["device"] != new["device"]:
        raise ValueError(f"tables of two devices: {old['device']!r} and {new['device']!r}")

    def key(entry: dict) -> tuple:
        return entry["layout"], int(entry["m"]), int(entry["k"]), int(entry["n"])

    entries = {key(e): e for e in old["entries"]}
    entries.update({key(e): e for e in new["entries"]})
    measured = [m for m in (old["measured"], new["measured"]) if m]
    return {
        "device": new["device"],
        "measured": "; ".join(dict.fromkeys(measured)),
        "entries": sorted(entries.values(), key=key),
    }
