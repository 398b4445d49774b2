"""Fixtures of the export tests: a small TriLM whose rows suit GGUF's 256-weight blocks."""

from __future__ import annotations

import pytest

GGUF_OVERRIDES = [
    "model.d_model=256",
    "model.d_ff=512",
    "model.n_layers=2",
    "model.n_heads=4",
    "model.n_kv_heads=2",
    "model.max_seq_len=128",
    "data.seq_len=64",
    "train.global_batch_size=8",
    "train.steps=40",
    "train.log_every=40",
    "train.eval_every=40",
    "train.eval_batches=1",
    "optimizer.warmup_steps=4",
    "optimizer.peak_lr=1e-2",
    "checkpoint.every=40",
    "checkpoint.async_save=false",
    "train.sample_tokens=0",
]


@pytest.fixture(scope="session")
def gguf_run(tmp_path_factory, make_micro_config):
    """A 40-step TriLM with d_model 256 and d_ff 512 (GGUF TQ rows must be multiples of 256)."""
    from trilm_jax.config import load_config
    from trilm_jax.train.loop import Trainer

    run_dir = tmp_path_factory.mktemp("gguf_run")
    config = load_config(None, [*GGUF_OVERRIDES, f"train.out_dir={run_dir}"])
    Trainer(config, quiet=True).run()
    return run_dir, config
