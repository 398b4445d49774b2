"""Write a synthetic sweep of run directories whose validation losses follow a known law.

    python scaling_analysis/data/make_synthetic_sweep.py [--out DIR]

Each run directory looks like one written by ``trilm train``: ``run_info.json`` and
``metrics.jsonl`` (train-loss lines every 2,000 steps, ``val_loss`` on 16 log-spaced
evaluation steps). The validation loss at (N = ``n_params``, D = ``tokens_seen``) is
L(N, D) = E + A/N^alpha + B/D^beta times log-normal noise (sigma ``NOISE``), with the
coefficients in ``TRUTH``: one law for TriLM, one for FloatLM, chosen (not measured) to give
byte-level losses of 1.6 to 4.4 nats, below ln 256 = 5.5. They are also written to
``truth.json`` in the sweep, so the notebook and tests can compare a fit with the law that
generated the points. Deterministic (seed 0). DIR defaults to scaling_analysis/data/sweep-synthetic.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

TRUTH = {
    "ternary": {"E": 1.0, "A": 60.0, "B": 150.0, "alpha": 0.33, "beta": 0.29},
    "float": {"E": 1.0, "A": 35.0, "B": 150.0, "alpha": 0.32, "beta": 0.29},
}
NOISE = 0.005  # log-normal sigma of the validation loss
VOCAB = 256  # byte-level tokenizer: embedding and head are VOCAB x d_model each
SEQ_LEN = 256
GLOBAL_BATCH_SIZE = 64
TOKENS_PER_STEP = SEQ_LEN * GLOBAL_BATCH_SIZE
SIZES = ((64, 4), (96, 4), (128, 6), (192, 6), (256, 8), (384, 8))  # (d_model, n_layers)
STEPS = 40_000  # every run: 655M tokens
N_EVALS = 16


def n_params(d_model: int, n_layers: int) -> tuple[int, int]:
    """(total, non-embedding): 12 d^2 a layer (attention 4 d^2, SwiGLU MLP 8 d^2), untied
    embedding and head."""
    non_embedding = 12 * n_layers * d_model**2
    return non_embedding + 2 * VOCAB * d_model, non_embedding


def write_run(out: Path, linear: str, d_model: int, n_layers: int, rng) -> None:
    law = TRUTH[linear]
    total, non_embedding = n_params(d_model, n_layers)
    name = f"d{d_model}-{'trilm' if linear == 'ternary' else 'floatlm'}"
    run_dir = out / name
    run_dir.mkdir(parents=True, exist_ok=True)
    info = {
        "model": f"synthetic-d{d_model}-l{n_layers}",
        "linear": linear,
        "n_params": total,
        "n_non_embedding_params": non_embedding,
        "seq_len": SEQ_LEN,
        "global_batch_size": GLOBAL_BATCH_SIZE,
    }
    (run_dir / "run_info.json").write_text(json.dumps(info, indent=2) + "\n")
    eval_steps = set(np.unique(np.geomspace(100, STEPS, N_EVALS).round().astype(int)).tolist())
    log_steps = sorted(eval_steps | set(range(2000, STEPS + 1, 2000)))
    lines = []
    for step in log_steps:
        tokens = step * TOKENS_PER_STEP
        clean = law["E"] + law["A"] / total ** law["alpha"] + law["B"] / tokens ** law["beta"]
        record = {
            "step": step,
            "tokens_seen": tokens,
            "loss": float(clean * np.exp(rng.normal(0, 4 * NOISE))),
            "learning_rate": 3e-3 * min(1.0, step / 1000),
            "grad_norm": float(abs(rng.normal(1.0, 0.1))),
            "tokens_per_second": 1e5,
            "mfu": None,
        }
        if step in eval_steps:
            record["val_loss"] = float(clean * np.exp(rng.normal(0, NOISE)))
        lines.append(json.dumps(record))
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "sweep-synthetic")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    for linear in ("ternary", "float"):
        for d_model, n_layers in SIZES:
            write_run(args.out, linear, d_model, n_layers, rng)
    truth = {"n_kind": "total", "noise_sigma": NOISE, "coefficients": TRUTH}
    (args.out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    print(f"wrote {2 * len(SIZES)} runs to {args.out}")


if __name__ == "__main__":
    main()
