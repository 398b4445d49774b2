"""The notebook runs end to end (executed with nbclient, with the kernel of the interpreter
running the tests, so it never rots): on the shipped real sweep (its default), on the shipped
synthetic sweep (against the known truth) and on a sweep trained here, which `trilm fit` also
fits."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "scaling_analysis" / "notebooks" / "scaling_laws.ipynb"


def execute(runs: str | None) -> tuple[str, int]:
    """Run the notebook with ``RUNS = runs``; (its printed text, the number of images shown)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    setup = nb.cells[1]
    assert "RUNS = None" in setup.source
    if runs is not None:
        setup.source = setup.source.replace("RUNS = None", f"RUNS = {runs!r}", 1)
    # "python3" is launched with sys.executable by jupyter_client: the venv running the tests
    client = nbclient.NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    text = "".join(out.get("text", "") for out in outputs)
    images = sum("image/png" in out.get("data", {}) for out in outputs)
    return text, images


def test_notebook_default_is_the_shipped_real_sweep():
    text, images = execute(None)
    assert "8 runs from" in text and "sweep-tiny-cpu" in text
    assert "ternary    40 points" in text and "float      40 points" in text
    assert "ternary  alpha" in text and "float    beta" in text
    assert "leave-one-N-out" in text and "tokens/param" in text
    assert images >= 6  # loss vs D, iso-loss, residuals for each family (+ isoFLOP if any)


def test_notebook_recovers_the_truth_of_the_synthetic_sweep():
    text, images = execute("scaling_analysis/data/sweep-synthetic/*")
    assert "12 runs" in text
    # every coefficient of both laws is compared with the truth; (nearly) all intervals hold it
    assert text.count(" in\n") + text.count(" OUT\n") == 10
    assert text.count(" OUT\n") <= 2
    assert "isoFLOP a=" in text
    assert images == 8


@pytest.fixture(scope="module")
def fresh_sweep(tmp_path_factory):
    """Two sizes of TriLM and FloatLM, 8 steps each, validated every step: a user's sweep."""
    from launch.sweep import run_sweep
    from trilm_jax.config import CONFIGS_DIR

    tmp = tmp_path_factory.mktemp("fresh")
    sweep = tmp / "sweep.yaml"
    sweep.write_text(
        f"base: {CONFIGS_DIR / 'runs' / 'tiny.yaml'}\nout_dir: {tmp / 'runs'}\n"
        "common: {model.n_layers: 1, model.n_heads: 2, model.n_kv_heads: 2, data.seq_len: 32,"
        " train.global_batch_size: 4, train.steps: 8, optimizer.warmup_steps: 2,"
        " train.eval_every: 1, train.log_every: 1, train.eval_batches: 1,"
        " train.sample_tokens: 0, checkpoint.every: 8, checkpoint.async_save: false}\n"
        "axes:\n"
        "  size: {d32: {model.d_model: 32, model.d_ff: 64}, d64: {model.d_model: 64,"
        " model.d_ff: 128}}\n"
        "  linear: {tri: {model.linear: ternary}, flo: {model.linear: float}}\n"
    )
    assert run_sweep(sweep) == 0
    return tmp / "runs"


def test_fit_and_notebook_on_a_fresh_sweep(fresh_sweep, tmp_path):
    from scaling_analysis.cli import main

    assert main(["--runs", str(fresh_sweep), "--bootstrap", "5", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "coefficients.json").read_text())
    assert set(summary["families"]) == {"ternary", "float"}
    for family in summary["families"].values():
        assert family["n_points"] == 16  # 2 runs x 8 validation points
    text, images = execute(str(fresh_sweep / "*"))
    assert "4 runs from" in text and "ternary    16 points" in text
    assert "leave-one-N-out: needs 3 or more model sizes, got 2" in text
    assert images >= 6
