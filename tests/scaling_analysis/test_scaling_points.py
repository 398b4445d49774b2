"""Loading (N, D, loss) points from run directories and CSV files, and the errors."""

import json
from pathlib import Path

import numpy as np
import pytest

from scaling_analysis.points import ScalingDataError, from_csv, from_run, from_runs

DATA = Path(__file__).resolve().parents[2] / "scaling_analysis" / "data"


def _runs(sweep: str) -> list[Path]:
    return sorted(p for p in (DATA / sweep).iterdir() if p.is_dir())


def test_points_from_the_shipped_sweeps():
    runs = _runs("sweep-tiny-cpu")
    assert len(runs) == 8
    points = from_runs(runs)
    assert len(points) == 80
    info = json.loads((runs[0] / "run_info.json").read_text())
    assert set(points.n) >= {float(info["n_params"])}
    non_emb = from_run(runs[0], "non_embedding")
    assert non_emb.n[0] == info["n_non_embedding_params"]
    synthetic = from_runs(_runs("sweep-synthetic"))
    assert len(synthetic) == 12 * 16 and synthetic.group[0] == "d128-floatlm"


def _write_run(path: Path, lines: list[dict], n_params=1000) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    info = {"n_params": n_params, "n_non_embedding_params": 800, "linear": "ternary"}
    (path / "run_info.json").write_text(json.dumps(info))
    (path / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def test_one_point_per_val_loss_line_and_a_resumed_step_counts_once(tmp_path):
    run = _write_run(
        tmp_path / "r",
        [
            {"step": 1, "tokens_seen": 100, "loss": 5.0},
            {"step": 2, "tokens_seen": 200, "loss": 4.0, "val_loss": 4.5},
            {"step": 3, "tokens_seen": 300, "loss": 3.5, "val_loss": 4.0},
            {"step": 3, "tokens_seen": 300, "loss": 3.4, "val_loss": 3.9},  # resumed run
        ],
    )
    points = from_run(run)
    np.testing.assert_array_equal(points.d, [200, 300])
    np.testing.assert_array_equal(points.loss, [4.5, 3.9])
    np.testing.assert_array_equal(points.n, [1000, 1000])


def test_bad_run_inputs_name_the_file_and_line(tmp_path):
    good = {"step": 1, "tokens_seen": 100, "val_loss": 4.0}
    run = _write_run(tmp_path / "a", [good, {"step": 2, "tokens_seen": 0, "val_loss": 3.0}])
    with pytest.raises(ScalingDataError, match=r"metrics.jsonl:2: D=0.0 must be a positive"):
        from_run(run)
    run = _write_run(tmp_path / "b", [good, {"step": 2, "tokens_seen": 200, "val_loss": "inf"}])
    with pytest.raises(ScalingDataError, match=r"metrics.jsonl:2: loss=inf"):
        from_run(run)
    run = _write_run(tmp_path / "c", [good], n_params=-3)
    with pytest.raises(ScalingDataError, match=r"run_info.json: n_params=-3 must be a positive"):
        from_run(run)
    (run / "metrics.jsonl").write_text("{not json\n")
    (run / "run_info.json").write_text(json.dumps({"n_params": 5}))
    with pytest.raises(ScalingDataError, match=r"metrics.jsonl:1: not valid JSON"):
        from_run(run)
    with pytest.raises(ScalingDataError, match="no 'n_non_embedding_params'"):
        from_run(run, "non_embedding")
    with pytest.raises(ScalingDataError, match="not a training run"):
        from_run(tmp_path / "missing")


def test_csv_with_column_mapping_and_errors(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("params,flops,final\n1e6,6e15,3.0\n2e6,2.4e16,2.5\n")
    points = from_csv(
        csv, n_column="params", d_column=None, loss_column="final", flops_column="flops"
    )
    np.testing.assert_allclose(points.d, [1e9, 2e9])  # D = C / 6N
    csv.write_text("N,D,loss\n1e6,1e9,3.0\n-5,1e9,3.0\n")
    with pytest.raises(ScalingDataError, match=f"{csv}:3: N=-5.0 must be a positive number"):
        from_csv(csv)
    csv.write_text("N,D,loss\n1e6,1e9,nan\n")
    with pytest.raises(ScalingDataError, match=f"{csv}:2: loss=nan"):
        from_csv(csv)
    csv.write_text("N,D,loss\n1e6,abc,3\n")
    with pytest.raises(ScalingDataError, match=f"{csv}:2: not a number"):
        from_csv(csv)
    csv.write_text("N,tokens,loss\n1,2,3\n")
    with pytest.raises(ScalingDataError, match=r"missing column\(s\) \['D'\]"):
        from_csv(csv)
