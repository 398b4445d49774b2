"""(N, D, loss) points from training runs (metrics.jsonl + run_info.json) or from CSV files.

A run directory written by ``trilm train`` gives one point per evaluation: N from
``run_info.json`` (``n_params`` or ``n_non_embedding_params``), D = ``tokens_seen`` and the loss
= ``val_loss`` of that line. Every point is checked: N and D positive, the loss finite and
positive; a failure names the file and line (or row).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np


class ScalingDataError(ValueError):
    """Bad or insufficient scaling-law input; the message names the file and row."""


@dataclass(frozen=True)
class Points:
    """Parallel arrays of parameters N, tokens D and losses, with a label per point."""

    n: np.ndarray  # parameters N of each point
    d: np.ndarray  # training tokens D seen at that point
    loss: np.ndarray  # (validation) loss
    group: tuple[str, ...]  # run name (or CSV file) of each point
    unique_tokens: np.ndarray | None = None  # unique tokens U_D available, for repeated data

    def __len__(self) -> int:
        return len(self.loss)

    def subset(self, mask: np.ndarray) -> Points:
        mask = np.asarray(mask, dtype=bool)
        return Points(
            self.n[mask],
            self.d[mask],
            self.loss[mask],
            tuple(g for g, m in zip(self.group, mask, strict=True) if m),
            None if self.unique_tokens is None else self.unique_tokens[mask],
        )

    @staticmethod
    def concat(parts: Iterable[Points]) -> Points:
        parts = list(parts)
        unique = [p.unique_tokens for p in parts]
        return Points(
            np.concatenate([p.n for p in parts]),
            np.concatenate([p.d for p in parts]),
            np.concatenate([p.loss for p in parts]),
            sum((p.group for p in parts), ()),
            None if any(u is None for u in unique) else np.concatenate(unique),
        )


def _check(n: float, d: float, loss: float, where: str) -> None:
    if not (math.isfinite(n) and n > 0):
        raise ScalingDataError(f"{where}: N={n!r} must be a positive number")
    if not (math.isfinite(d) and d > 0):
        raise ScalingDataError(f"{where}: D={d!r} must be a positive number")
    if not (math.isfinite(loss) and loss > 0):
        raise ScalingDataError(f"{where}: loss={loss!r} must be a finite positive number")


def from_run(run_dir: str | Path, n_kind: Literal["total", "non_embedding"] = "total") -> Points:
    """The validation-loss points of one ``trilm train`` run directory."""
    run_dir = Path(run_dir)
    info_path, metrics_path = run_dir / "run_info.json", run_dir / "metrics.jsonl"
    for path in (info_path, metrics_path):
        if not path.is_file():
            raise ScalingDataError(f"{run_dir}: not a training run ({path.name} is missing)")
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as err:
        raise ScalingDataError(f"{info_path}: not valid JSON ({err.msg})") from None
    key = {"total": "n_params", "non_embedding": "n_non_embedding_params"}[n_kind]
    if key not in info:
        raise ScalingDataError(f"{info_path}: no {key!r}")
    try:
        n = float(info[key])
    except (TypeError, ValueError):
        n = float("nan")
    if not (math.isfinite(n) and n > 0):
        raise ScalingDataError(f"{info_path}: {key}={info[key]!r} must be a positive number")
    by_tokens: dict[float, float] = {}  # a resumed run may log a step twice: the later line wins
    for line_no, line in enumerate(metrics_path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{metrics_path}:{line_no}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ScalingDataError(f"{where}: not valid JSON ({err.msg})") from None
        if not isinstance(record, dict) or "val_loss" not in record:
            continue
        try:
            loss = float("nan") if record["val_loss"] is None else float(record["val_loss"])
            d = float(record["tokens_seen"])
        except KeyError:
            raise ScalingDataError(f"{where}: a 'val_loss' line without 'tokens_seen'") from None
        except (TypeError, ValueError):
            raise ScalingDataError(
                f"{where}: val_loss={record['val_loss']!r}, "
                f"tokens_seen={record.get('tokens_seen')!r} must be numbers"
            ) from None
        _check(n, d, loss, where)
        by_tokens[d] = loss
    if not by_tokens:
        raise ScalingDataError(f"{metrics_path}: no line with a 'val_loss'")
    rows = [(n, d, loss) for d, loss in sorted(by_tokens.items())]
    arr = np.array(rows, dtype=np.float64)
    unique = info.get("unique_tokens")  # optional: the size of a repeated training set
    if unique is not None and not (isinstance(unique, int | float) and unique > 0):
        raise ScalingDataError(f"{info_path}: unique_tokens={unique!r} must be a positive number")
    return Points(
        arr[:, 0],
        arr[:, 1],
        arr[:, 2],
        (run_dir.name,) * len(rows),
        None if unique is None else np.full(len(rows), float(unique)),
    )


def from_runs(run_dirs: Iterable[str | Path], n_kind: str = "total") -> Points:
    """The points of several runs, concatenated."""
    run_dirs = list(run_dirs)
    if not run_dirs:
        raise ScalingDataError("no run directories given")
    return Points.concat(from_run(r, n_kind) for r in run_dirs)


def from_csv(
    path: str | Path,
    n_column: str = "N",
    d_column: str | None = "D",
    loss_column: str = "loss",
    flops_column: str | None = None,
    unique_column: str | None = None,
) -> Points:
    """Points from a CSV file. Give either ``d_column`` or ``flops_column`` (then D = C / 6N,
    as for the Chinchilla points: N = "Model Size", C = "Training FLOP"); ``unique_column``
    optionally names the unique tokens available (data-constrained fits)."""
    path = Path(path)
    if not path.is_file():
        raise ScalingDataError(f"{path} does not exist")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        needed = [n_column, loss_column, flops_column if flops_column else d_column]
        needed += [unique_column] if unique_column else []
        missing = [c for c in needed if c not in header]
        if missing:
            raise ScalingDataError(f"{path}: missing column(s) {missing}; has {header}")
        rows = []
        for row_no, row in enumerate(reader, 2):  # row 1 is the header
            where = f"{path}:{row_no}"
            try:
                n = float(row[n_column])
                loss = float(row[loss_column])
                if flops_column:  # a zero N is reported by _check below
                    d = float(row[flops_column]) / (6 * n) if n else float("nan")
                else:
                    d = float(row[d_column])
                unique = float(row[unique_column]) if unique_column else 1.0
            except (TypeError, ValueError):
                raise ScalingDataError(f"{where}: not a number in {needed}: {row}") from None
            _check(n, d, loss, where)
            if not (math.isfinite(unique) and unique > 0):
                raise ScalingDataError(f"{where}: unique tokens={unique!r} must be positive")
            rows.append((n, d, loss, unique))
    if not rows:
        raise ScalingDataError(f"{path}: no data rows")
    arr = np.array(rows, dtype=np.float64)
    return Points(
        arr[:, 0],
        arr[:, 1],
        arr[:, 2],
        (path.name,) * len(rows),
        arr[:, 3] if unique_column else None,
    )
