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
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

from kernels_pallas.triton_matmul import BlockConfig

TUNED_DIR = Path(__file__).resolve().parent / "tuned"


def table_path(device_kind: str, directory: Path = TUNED_DIR) -> Path:
    """``tuned/<device kind, lower case, spaces as dashes>.json``."""
    return directory / (device_kind.strip().lower().replace(" ", "-") + ".json")


@functools.cache
def _load(path: Path) -> dict[tuple[str, int, int], list[tuple[int, BlockConfig]]]:
    if not path.is_file():
        return {}
    table: dict[tuple[str, int, int], list[tuple[int, BlockConfig]]] = {}
    fields = {f.name for f in dataclasses.fields(BlockConfig)}
    for entry in json.loads(path.read_text())["entries"]:
        config = BlockConfig(**{k: v for k, v in entry["config"].items() if k in fields})
        key = (entry["layout"], int(entry["k"]), int(entry["n"]))
        table.setdefault(key, []).append((int(entry["m"]), config))
    for rows in table.values():
        rows.sort(key=lambda row: row[0])
    return table


def tuned_config(
    layout: str, m: int, k: int, n: int, device_kind: str, directory: Path = TUNED_DIR
) -> BlockConfig | None:
    """The measured configuration for this point on ``device_kind``, or None."""
    for measured_m, config in _load(table_path(device_kind, directory)).get((layout, k, n), []):
        # block_m follows M (16-row tiles up to M = 16, 64 above): never borrow across that line
        if measured_m >= m and (m > 16) == (measured_m > 16):
            return config
    return None


def table_from_benchmark(result: dict) -> dict:
    """The table of a ``benchmarks/kernels.py`` result (its ``rows``' fastest configs)."""
    entries = []
    for row in result["rows"]:
        for layout, key in (("2bit", "2bit"), ("1.6bit", "1p6bit")):
            config = row.get(f"{key}_config")
            if config and len(row.get(f"{key}_tried", [])) > 1:  # tuned points only
                entries.append(
                    dict(layout=layout, m=row["m"], k=row["k"], n=row["n"], config=config)
                )
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
