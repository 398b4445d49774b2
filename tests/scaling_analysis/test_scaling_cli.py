"""``trilm fit`` / ``python -m scaling_analysis`` on the shipped sweeps."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scaling_analysis.cli import main

ROOT = Path(__file__).resolve().parents[2]
SYNTHETIC = ROOT / "scaling_analysis" / "data" / "sweep-synthetic"
TINY = ROOT / "scaling_analysis" / "data" / "sweep-tiny-cpu"


def test_cli_on_the_synthetic_sweep_recovers_the_truth_and_writes_everything(tmp_path):
    argv = ["--runs", str(SYNTHETIC), "--linear", "ternary", "--out", str(tmp_path)]
    argv += ["--bootstrap", "50", "--target-n", "3e7", "--target-d", "1e9", "--formats", "png,svg"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "coefficients.json").read_text())
    truth = json.loads((SYNTHETIC / "truth.json").read_text())["coefficients"]["ternary"]
    assert result["n_points"] == 96
    for name, value in truth.items():
        lo, hi = result["intervals_95"][name]
        assert lo * 0.98 <= value <= hi * 1.02, (name, lo, hi)  # noise 0.5%: truth is close
    law = truth
    exact = law["E"] + law["A"] / 3e7 ** law["alpha"] + law["B"] / 1e9 ** law["beta"]
    assert result["target"]["loss"] == pytest.approx(exact, rel=0.02)
    assert result["isoflop"]["exponent_n"] == pytest.approx(
        law["beta"] / (law["alpha"] + law["beta"]), abs=0.05
    )
    assert len(result["leave_one_out"]["rms_log_error"]) == 6
    assert result["fit_small_predict_largest"]["rms_log_error"] < 0.02
    for stem in ("loss_vs_tokens", "iso_loss", "residuals", "isoflop"):
        assert (tmp_path / f"{stem}.png").stat().st_size > 10_000
        assert (tmp_path / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
    report = (tmp_path / "report.md").read_text()
    assert "Compute-optimal" in report and "![isoflop](isoflop.png)" in report


def test_module_entry_point_on_the_real_tiny_sweep_with_kaplan_form(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "scaling_analysis", "--runs", str(TINY), "--linear", "float"]
        + ["--law", "kaplan", "--bootstrap", "5", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "coefficients.json").read_text())
    assert result["n_points"] == 40 and set(result["coefficients"]) == {
        "N_c",
        "D_c",
        "alpha_n",
        "alpha_d",
    }
    assert np.isfinite(result["coefficients"]["alpha_d"])


def test_data_constrained_option_on_a_csv(tmp_path):
    from scaling_analysis.data_constrained import DataConstrainedLaw
    from scaling_analysis.laws import ChinchillaLaw

    law = DataConstrainedLaw(ChinchillaLaw(1.87, 521.0, 1488.0, 0.35, 0.353), 15.4, 5.3)
    # sizes below the compute-optimal N of the single-epoch points (Muennighoff et al. discount
    # larger ones even without repetition), so the base law is a plain Chinchilla fit there
    n = np.repeat(np.geomspace(2e6, 2e7, 5), 10)
    unique = np.full(n.size, 4e9)
    d = np.tile(np.geomspace(4e8, 1.6e11, 10), 5)
    table = np.stack([n, d, law.loss(n, d, unique), unique], axis=1)
    rows = [",".join(repr(float(x)) for x in row) for row in table]
    csv = tmp_path / "points.csv"
    csv.write_text("N,D,loss,U\n" + "\n".join(rows) + "\n")
    argv = ["--csv", str(csv), "--csv-unique", "U", "--data-constrained", "--bootstrap", "0"]
    assert main(argv + ["--out", str(tmp_path / "r")]) == 0
    result = json.loads((tmp_path / "r" / "coefficients.json").read_text())
    assert result["data_constrained"]["coefficients"]["R_D_star"] == pytest.approx(15.4, rel=0.1)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give --runs"),
        (["--csv", "nope.csv"], "nope.csv does not exist"),
        (["--runs", "missing-run"], "missing-run: not a training run (run_info.json is missing)"),
        (["--runs", str(TINY), "--target-n", "1e9"], "--target-n and --target-d go together"),
    ],
)
def test_errors_are_one_line_naming_the_file_or_option(tmp_path, capsys, argv, message):
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_default_fits_trilms_and_floatlms_separately(tmp_path):
    """The shipped sweep holds both families: by default each gets its own law (the same as
    fitting that family's runs alone) and the top report compares them."""
    from scaling_analysis.fit import fit_law
    from scaling_analysis.points import from_runs

    assert main(["--runs", str(TINY), "--bootstrap", "0", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "coefficients.json").read_text())
    assert set(summary["families"]) == {"ternary", "float"}
    for family in ("ternary", "float"):
        runs = [
            r.parent
            for r in sorted(TINY.glob("*/run_info.json"))
            if json.loads(r.read_text())["linear"] == family
        ]
        alone = fit_law(from_runs(runs, "total")).law.as_dict()
        fitted = summary["families"][family]["coefficients"]
        assert summary["families"][family]["n_points"] == 40
        for name, value in alone.items():
            assert fitted[name] == pytest.approx(value, rel=1e-9), (family, name)
        assert (tmp_path / family / "loss_vs_tokens.png").is_file()
    report = (tmp_path / "report.md").read_text()
    assert "| beta |" in report and "(ternary/report.md)" in report
