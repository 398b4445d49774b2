"""Hugging Face export and import against transformers' own LlamaForCausalLM (torch, CPU)."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

from export.api import export_checkpoint
from export.hf_import import import_hf
from trilm_jax.config import load_config
from trilm_jax.inference.generate import freeze_weights
from trilm_jax.inference.load import load_model_from_checkpoint

torch = pytest.importorskip("torch", reason="torch (CPU) is needed to run transformers")
transformers = pytest.importorskip("transformers", reason="transformers is not installed")

TOKENS = [[82, 79, 77, 69, 79, 58, 10, 87, 104, 97, 116, 32, 108, 105, 103, 104, 116, 256]]


def _ours(model):
    return np.asarray(freeze_weights(model)(jnp.asarray(TOKENS))[0][0])


def _theirs(directory):
    hf = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    with torch.no_grad():
        return hf(torch.tensor(TOKENS)).logits[0].numpy()


@pytest.mark.parametrize(("dtype", "atol"), [("float32", 2e-4), ("bfloat16", 0.15)])
def test_transformers_matches_our_logits(trained_run, tmp_path, dtype, atol):
    run_dir, _, _ = trained_run
    export_checkpoint(run_dir, "hf", tmp_path / "hf", hf_dtype=dtype)
    ours = _ours(load_model_from_checkpoint(run_dir)[0])
    theirs = _theirs(tmp_path / "hf")
    np.testing.assert_allclose(theirs, ours, atol=atol)
    if dtype == "bfloat16":
        assert (theirs.argmax(-1) == ours.argmax(-1)).mean() >= 0.9
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert tok("ROMEO:\nWhat light")["input_ids"] == TOKENS[0][:-1]


def test_import_random_transformers_llama(tmp_path):
    cfg = transformers.LlamaConfig(
        vocab_size=258,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(cfg).eval()
    hf.save_pretrained(tmp_path / "hf")
    with torch.no_grad():
        theirs = hf(torch.tensor(TOKENS)).logits[0].numpy()
    base = load_config(
        None,
        [
            "data.seq_len=32",
            "train.steps=4",
            "optimizer.warmup_steps=1",
            "train.global_batch_size=2",
        ],
    )
    config = import_hf(tmp_path / "hf", base, tmp_path / "run")
    assert config.model.linear == "float" and config.model.n_kv_heads == 2
    model, restored, step = load_model_from_checkpoint(tmp_path / "run")
    assert step == 0 and restored == config
    np.testing.assert_allclose(_ours(model), theirs, atol=1e-4)
    assert json.loads((tmp_path / "run" / "import_info.json").read_text())["model"]["d_ff"] == 96


def test_import_of_our_export_resumes_training(trained_run, tmp_path):
    from trilm_jax.train.loop import Trainer

    run_dir, _, _ = trained_run
    export_checkpoint(run_dir, "hf", tmp_path / "hf", hf_dtype="float32")
    base = load_config(
        None,
        [
            "data.seq_len=32",
            "train.steps=2",
            "optimizer.warmup_steps=1",
            "train.global_batch_size=2",
            "train.eval_batches=1",
            "checkpoint.async_save=false",
            "train.sample_tokens=0",
        ],
    )
    config = import_hf(tmp_path / "hf", base, tmp_path / "run")
    np.testing.assert_array_equal(
        _ours(load_model_from_checkpoint(tmp_path / "run")[0]),
        _ours(load_model_from_checkpoint(run_dir)[0]),
    )
    result = Trainer(config, resume=True, quiet=True).run()
    assert result.final_step == 2
