"""GGUF TQ2_0 / TQ1_0: read back with gguf's reader and dequantizer; llama.cpp when installed."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize

from export.api import export_checkpoint
from export.gguf_export import permute_qk
from export.source import open_checkpoint
from trilm_jax.model.ternary import ternarize


@pytest.fixture(scope="module")
def gguf_files(gguf_run, tmp_path_factory):
    run_dir, _ = gguf_run
    out = tmp_path_factory.mktemp("gguf")
    return {
        f: export_checkpoint(run_dir, f, out / f"{f}.gguf").path
        for f in ("gguf-tq2_0", "gguf-tq1_0")
    }


@pytest.mark.parametrize(
    ("fmt_name", "qtype"),
    [("gguf-tq2_0", GGMLQuantizationType.TQ2_0), ("gguf-tq1_0", GGMLQuantizationType.TQ1_0)],
)
def test_gguf_reads_back_as_f16_gamma_times_trits(gguf_run, gguf_files, fmt_name, qtype):
    run_dir, config = gguf_run
    source = open_checkpoint(run_dir)
    reader = GGUFReader(gguf_files[fmt_name])
    tensors = {t.name: t for t in reader.tensors}
    c = config.model
    fields = {name: f.contents() for name, f in reader.fields.items()}
    assert fields["general.architecture"] == "llama"
    assert fields["llama.embedding_length"] == c.d_model
    assert fields["llama.block_count"] == c.n_layers
    assert fields["llama.attention.head_count_kv"] == c.n_kv_heads
    assert (
        fields["tokenizer.ggml.tokens"][65] == "A" and fields["tokenizer.ggml.eos_token_id"] == 256
    )
    assert len(tensors) == 1 + 2 + 9 * c.n_layers
    assert tensors["blk.0.attn_norm.weight"].tensor_type == GGMLQuantizationType.F32
    assert list(tensors["token_embd.weight"].shape) == [c.d_model, c.vocab_size]  # ne order
    np.testing.assert_array_equal(np.asarray(tensors["output.weight"].data), source.array("head").T)
    for path, name, heads in [
        ("blocks.attn.q", "attn_q", c.n_heads),
        ("blocks.attn.k", "attn_k", c.n_kv_heads),
        ("blocks.mlp.down", "ffn_down", None),
    ]:
        kernel = source.array(path + ".kernel")
        linear = source.linear_spec(path)
        for layer in range(c.n_layers):
            t = tensors[f"blk.{layer}.{name}.weight"]
            assert t.tensor_type == qtype
            assert list(t.shape) == [kernel.shape[1], kernel.shape[2]]  # ne = [in, out]
            got = dequantize(np.asarray(t.data), qtype)
            w = np.asarray(
                ternarize(kernel[layer], linear.eps, linear.n_scale_shards, linear.shard_axis)
            )
            gamma = np.abs(w).max()
            expected = (w / gamma).round() * np.float32(np.float16(gamma))  # trits * f16(gamma)
            expected = expected.T if heads is None else permute_qk(expected.T, heads)
            np.testing.assert_array_equal(got, expected)
            np.testing.assert_allclose(
                got, w.T if heads is None else permute_qk(w.T, heads), rtol=5e-4
            )


@pytest.mark.llamacpp
def test_llama_cpp_agrees_with_our_logits(gguf_run, gguf_files):
    llama_cpp = pytest.importorskip("llama_cpp")
    import jax.numpy as jnp

    from trilm_jax.data.tokenizer import ByteTokenizer
    from trilm_jax.inference.generate import freeze_weights

    run_dir, config = gguf_run
    source = open_checkpoint(run_dir)
    text = "ROMEO:\nWhat light through yonder window breaks? It is the east, and Juliet\u00e9"
    all_ids = [int(i) for i in ByteTokenizer().encode(text)]
    ids = all_ids[:64]
    ours = np.asarray(freeze_weights(source.model)(jnp.asarray([ids]))[0][0])
    for fmt_name in gguf_files:
        llm = llama_cpp.Llama(
            str(gguf_files[fmt_name]), n_ctx=128, logits_all=True, verbose=False, n_threads=2
        )
        # llama.cpp's own tokenizer gives our byte ids (spaces, newlines, UTF-8 included) ...
        assert llm.tokenize(text.encode(), add_bos=False, special=False) == all_ids
        assert llm.detokenize(all_ids) == text.encode()
        llm.eval(ids)  # ... and its logits agree with ours on each of the 64 positions
        theirs = np.asarray(llm.scores[: len(ids), : config.model.vocab_size])
        cos = (
            (ours * theirs).sum(-1)
            / np.linalg.norm(ours, axis=-1)
            / np.linalg.norm(theirs, axis=-1)
        )
        assert np.array_equal(ours.argmax(-1), theirs.argmax(-1)), fmt_name
        assert cos.min() > 0.99, (fmt_name, cos.min())
        llm.close()
