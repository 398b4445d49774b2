"""Serving from packed weights (trilm_jax/inference/packed.py): a model whose linears hold packed
trits computes the logits of the same model with its effective float weights, and linears the
kernels cannot take stay float with a reason."""

from __future__ import annotations

from types import SimpleNamespace

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from kernels_pallas import layouts
from trilm_jax.config import ModelConfig
from trilm_jax.inference.generate import freeze_weights, generate
from trilm_jax.inference.packed import pack_model
from trilm_jax.model.transformer import Linear, Transformer

# d_ff 688 (the tiny preset's) is no multiple of 256: the MLP stays float, attention is packed
CONFIG = ModelConfig(d_model=256, n_layers=2, n_heads=2, n_kv_heads=2, d_ff=688, max_seq_len=32)


@pytest.fixture(scope="module")
def trained_like() -> Transformer:
    """A small TriLM with latent weights spread like a trained one's (not all near zero)."""
    model = Transformer(CONFIG, nnx.Rngs(0))
    rng = np.random.default_rng(1)
    for _, module in nnx.iter_graph(model):
        if isinstance(module, Linear):
            shape = module.kernel[...].shape
            module.kernel[...] = jnp.asarray(rng.laplace(0, 0.02, shape), jnp.float32)
    return model


def _two_gamma_shards(
    model: Transformer, rng: np.random.Generator, factor: float | None = None
) -> None:
    """Latent weights spread like trained ones, the second half of each matrix's shard axis
    scaled by ``factor`` (a fresh draw in [2, 5) a matrix if None): with
    ``ternary_scale_shards=2``, two clearly different gammas a matrix."""
    for _, module in nnx.iter_graph(model):
        if isinstance(module, Linear):
            w = rng.laplace(0, 0.02, module.kernel[...].shape).astype(np.float32)
            index = [slice(None)] * w.ndim
            index[module.shard_axis] = slice(w.shape[module.shard_axis] // 2, None)
            w[tuple(index)] *= factor if factor is not None else float(rng.uniform(2, 5))
            module.kernel[...] = jnp.asarray(w)


@pytest.mark.parametrize("layout", layouts.LAYOUTS)
def test_packed_model_matches_effective_weights(trained_like: Transformer, layout: str) -> None:
    packed, kept = pack_model(trained_like, layout)
    assert set(kept) == {"blocks.mlp.gate", "blocks.mlp.up", "blocks.mlp.down"}
    assert all("multiples of 256" in why for why in kept.values())
    served = {p for p, m in nnx.iter_graph(packed) if isinstance(m, Linear) and m.packed_layout}
    assert len(served) == 4  # q, k, v, o
    q = packed.blocks.attn.q
    assert q.packed[...].dtype == jnp.uint8
    assert q.packed[...].shape == (2, layouts.rows_per_plane(256, layout), 256)
    assert q.kernel is None  # no float copy of the served weights

    tokens = jnp.asarray(np.random.default_rng(2).integers(0, 258, (2, 12)), jnp.int32)
    want, _ = freeze_weights(trained_like)(tokens, compute_dtype=jnp.float32)
    got, _ = packed(tokens, compute_dtype=jnp.float32)
    want64 = np.asarray(want, np.float64)
    err = np.linalg.norm(np.asarray(got, np.float64) - want64) / np.linalg.norm(want64)
    # the packed linears take bf16 activations; everything else is float32 in both
    assert 1e-6 < err < 1e-2


def test_packed_model_generates_like_the_float_one(trained_like: Transformer) -> None:
    packed, _ = pack_model(trained_like, "2bit")
    prompt = np.array([5, 17, 42, 7], np.int32)
    want = generate(freeze_weights(trained_like), prompt, 6, compute_dtype=jnp.bfloat16)
    got = generate(packed, prompt, 6, compute_dtype=jnp.bfloat16)
    np.testing.assert_array_equal(got, want)


def test_pack_model_serves_per_shard_gammas() -> None:
    """Spectra's tensor-parallel gammas: per output shard (q, k, v, gate, up) the kernel scales
    column blocks; per input shard (o, down) the activations are scaled before it."""
    config = ModelConfig(
        d_model=512, n_layers=1, n_heads=2, n_kv_heads=2, d_ff=512, ternary_scale_shards=2
    )
    model = Transformer(config, nnx.Rngs(0))
    rng = np.random.default_rng(4)
    _two_gamma_shards(model, rng, 4.0)
    packed, kept = pack_model(model, "1.6bit")
    assert kept == {}
    assert packed.blocks.mlp.down.gamma[...].shape == (1, 2)
    gamma = np.asarray(packed.blocks.mlp.down.gamma[...])
    assert 3.0 < gamma[0, 1] / gamma[0, 0] < 5.0
    tokens = jnp.asarray(rng.integers(0, 258, (1, 6)), jnp.int32)
    want, _ = freeze_weights(model)(tokens)
    got, _ = packed(tokens)
    want64 = np.asarray(want, np.float64)
    assert np.linalg.norm(np.asarray(got, np.float64) - want64) / np.linalg.norm(want64) < 1e-2
    with pytest.raises(ValueError, match="unknown packed layout"):
        pack_model(model, "3bit")
    floatlm = Transformer(ModelConfig(linear="float", n_layers=1), nnx.Rngs(0))
    with pytest.raises(ValueError, match="FloatLM: it has no ternary weights"):
        pack_model(floatlm, "2bit")


def test_decode_benchmark_runs_on_cpu(capsys) -> None:
    """benchmarks/decode.py end to end on the tiny preset (its table, not its timings)."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("bench_decode", root / "benchmarks/decode.py")
    decode = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(decode)
    args = ["--preset", str(root / "configs/models/tiny.yaml"), "--layers", "1"]
    cli = [*args, "--batch", "1", "--tokens", "2,4", "--fuse", "on,off", "--transposed", "off,on"]
    assert decode.main(cli) == 0
    out = capsys.readouterr().out
    rows = [
        line.split()
        for line in out.splitlines()
        if line.split()[:1] in (["bf16"], ["2bit"], ["1.6bit"])
    ]
    # bf16 once a fusion; the packed variants without and with the transposed copies
    want = [
        [w, fused, t, "1"]
        for fused in ("yes", "no")
        for w, t in [
            ("bf16", "no"),
            ("2bit", "no"),
            ("1.6bit", "no"),
            ("2bit", "yes"),
            ("1.6bit", "yes"),
        ]
    ]
    assert [r[:4] for r in rows] == want
    mb = {r[0]: float(r[7]) for r in rows}
    assert mb["2bit"] < mb["bf16"]  # attention packed, the MLP (688 wide) float in both


def test_fused_packed_projections_compute_the_unfused_model() -> None:
    """q, k, v and gate, up fused into one packed linear each (``split_layers(fuse=True)``):
    grouped-query attention makes k and v narrower than q, and gammas per output shard then
    cover blocks of different widths (256, 128, 128 columns), which the fused linear's gammas
    must reproduce. Same logits as the unfused packed model and as the effective weights."""
    config = ModelConfig(
        d_model=512, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=768, ternary_scale_shards=2
    )
    model = Transformer(config, nnx.Rngs(5))
    rng = np.random.default_rng(5)
    _two_gamma_shards(model, rng)  # every shard its own clearly different gamma
    packed, kept = pack_model(model, "2bit")
    assert kept == {}
    tokens = jnp.asarray(rng.integers(0, 258, (2, 6)), jnp.int32)

    graphdef, states = packed.split_layers(fuse=True)
    fused = [nnx.merge(graphdef, s) for s in states]
    qkv, gate_up = fused[0].attn.qkv, fused[0].mlp.gate_up
    assert fused[0].attn.q is None and fused[0].mlp.up is None
    assert qkv.packed[...].shape == (layouts.rows_per_plane(512, "2bit"), 512 + 2 * 256)
    # gammas per output shard are held one a column (what the kernels read)
    assert qkv.gamma[...].shape == (1024,) and gate_up.gamma[...].shape == (1536,)
    # each part's output columns, from the unfused layer's own linears; v's columns also carry
    # o's gamma of the shard (two heads) that their kv head feeds
    plain_graphdef, plain_states = packed.split_layers(fuse=False)
    plain = nnx.merge(plain_graphdef, plain_states[0])
    x = jnp.asarray(rng.normal(size=(3, 512)), jnp.bfloat16)
    o_gamma = np.asarray(plain.attn.o.gamma[...])  # [2]: heads 0-1, heads 2-3
    v = np.asarray(plain.attn.v(x), np.float32) * np.repeat(o_gamma, 128)
    parts = [plain.attn.q(x), plain.attn.k(x)]
    want_qkv = np.concatenate([np.asarray(p, np.float32) for p in parts] + [v], -1)
    np.testing.assert_allclose(np.asarray(qkv(x), np.float32), want_qkv, rtol=1e-2, atol=1e-3)

    got, _ = packed(tokens, layers=fused)
    unfused, _ = packed(tokens, layers=[nnx.merge(plain_graphdef, s) for s in plain_states])
    want, _ = freeze_weights(model)(tokens)
    # against the effective weights in float32: as close as the unfused packed model (v is
    # scaled before a bf16 rounding rather than the attention output after it)
    want64 = np.asarray(want, np.float64)

    def err(a):
        return np.linalg.norm(np.asarray(a, np.float64) - want64) / np.linalg.norm(want64)

    assert err(got) < 1e-2 and err(got) < 1.1 * err(unfused)
    # o's and down's gammas per input shard moved onto v's and up's columns: no scaling of x
    for row_parallel in (fused[0].attn.o, fused[0].mlp.down):
        np.testing.assert_array_equal(np.asarray(row_parallel.gamma[...]), [1.0])


def test_input_shard_gammas_stay_where_a_kv_head_spans_two_shards() -> None:
    """One kv head for four query heads whose o gammas come in two shards: v's columns cannot
    carry both, so o keeps its gammas (and down's still move onto up)."""
    config = ModelConfig(
        d_model=512, n_layers=1, n_heads=4, n_kv_heads=1, d_ff=512, ternary_scale_shards=2
    )
    model = Transformer(config, nnx.Rngs(6))
    rng = np.random.default_rng(6)
    _two_gamma_shards(model, rng, 3.0)
    packed, _ = pack_model(model, "1.6bit")
    graphdef, states = packed.split_layers(fuse=True)
    block = nnx.merge(graphdef, states[0])
    assert block.attn.o.gamma[...].shape == (2,)
    assert block.mlp.down.gamma[...].shape == (1,)
    tokens = jnp.asarray(rng.integers(0, 258, (2, 5)), jnp.int32)
    got, _ = packed(tokens, layers=[block])
    want, _ = freeze_weights(model)(tokens)
    want64 = np.asarray(want, np.float64)
    assert np.linalg.norm(np.asarray(got, np.float64) - want64) / np.linalg.norm(want64) < 1e-2


def test_transposed_copies_follow_fusion_and_keep_the_function(trained_like: Transformer) -> None:
    """``split_layers(transposed=True)``: every packed linear of the per-layer copies, fused ones
    included, also holds ``packed.T`` (the Mosaic kernel's operand); where that kernel does not
    run (here: the CPU) the model computes what it computed without the copies."""
    packed, _ = pack_model(trained_like, "1.6bit")
    graphdef, states = packed.split_layers(fuse=True, transposed=True)
    layers = [nnx.merge(graphdef, s) for s in states]
    served = [m for _, m in nnx.iter_graph(layers[1]) if isinstance(m, Linear) and m.packed_layout]
    assert len(served) == 2  # qkv and o (the MLP stays float)
    for linear in served:
        np.testing.assert_array_equal(
            np.asarray(linear.packed_t[...]), np.asarray(linear.packed[...]).T
        )
    plain_graphdef, plain_states = packed.split_layers(fuse=True)
    tokens = jnp.asarray(np.random.default_rng(3).integers(0, 258, (2, 8)), jnp.int32)
    got, _ = packed(tokens, layers=layers)
    want, _ = packed(tokens, layers=[nnx.merge(plain_graphdef, s) for s in plain_states])
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    prompt = np.array([[5, 17, 42], [7, 8, 9]], np.int32)
    np.testing.assert_array_equal(
        generate(packed, prompt, 4, transposed_packed=True),
        generate(packed, prompt, 4, transposed_packed=False),
    )
    with pytest.raises(ValueError, match="no packed weights"):
        trained_like.blocks.attn.q.add_transposed()


H200 = SimpleNamespace(
    platform="gpu", compute_capability="9.0", device_kind="NVIDIA H200", core_count=132
)
"""A stand-in for the H200 (``is_hopper``, the shipped table's device kind, its SMs)."""


def test_block_linear_shapes_of_the_spectra_widths() -> None:
    """``block_linear_shapes``: ``(K, N)`` of q|k|v, gate|up (or the seven apart), o and down."""
    from trilm_jax.inference.generate import block_linear_shapes

    cfg = ModelConfig(d_model=256, n_heads=4, n_kv_heads=2, d_ff=688)  # head_dim 64
    assert block_linear_shapes(cfg) == [(256, 512), (256, 1376), (256, 256), (688, 256)]
    assert block_linear_shapes(cfg, fused=False) == [
        (256, 256), (256, 128), (256, 688), (256, 256), (688, 256)
    ]  # fmt: skip
    spectra_3p9b = ModelConfig(d_model=3072, n_heads=24, n_kv_heads=24, d_ff=9216)
    assert block_linear_shapes(spectra_3p9b) == [
        (3072, 9216), (3072, 18432), (3072, 3072), (9216, 3072)
    ]  # fmt: skip


def test_transposed_copy_is_wanted_where_a_layer_takes_the_mosaic_kernel() -> None:
    """``wants_transposed_packed`` asks, shape by shape, what ``ternary_matmul`` would run on
    the device (its measured table, else the rules): the shipped H200 table gives 8192 x 8192
    2-bit at M = 16 the Mosaic kernel, which the rules alone (2**27 weights below M = 17) did
    not, and 1.6-bit 3072 x 18432 (the 3.9B's gate|up, 56.6 M weights) at M = 16; the rules
    give layers of 2**27 weights and up the kernel at every M to 128, and none above; the 1B's
    gate|up (2**25 weights) only up to M = 3 at 2-bit (x in the kernel on the small layers;
    1.6-bit's R = 416 does not fit it), as the 3.9B's layers and 8192 x 8192 at M = 1; off a
    Hopper GPU never."""
    from kernels_pallas import mosaic_matmul
    from trilm_jax.inference.generate import takes_mosaic, wants_transposed_packed

    for layout in ("2bit", "1.6bit"):
        assert all(takes_mosaic(layout, m, 8192, 57344, H200) for m in (1, 16, 17, 64, 128))
        assert not takes_mosaic(layout, 129, 8192, 57344, H200)
        assert not any(takes_mosaic(layout, m, 2048, 16384, H200) for m in (4, 16, 64, 128))
        assert takes_mosaic(layout, 1, 2048, 16384, H200) == (layout == "2bit")
        assert takes_mosaic(layout, 1, 8192, 8192, H200)
        assert not takes_mosaic(layout, 4, 8192, 8192, H200)
    assert takes_mosaic("2bit", 16, 8192, 8192, H200)
    assert mosaic_matmul.use_mosaic(16, 8192, 8192) is False  # the table's entry, not the rules
    assert takes_mosaic("1.6bit", 16, 3072, 18432, H200)
    assert not takes_mosaic("2bit", 16, 3072, 18432, H200)

    shapes = [(3072, 9216), (3072, 18432), (3072, 3072), (9216, 3072)]
    assert wants_transposed_packed(16, shapes, "1.6bit", H200)
    assert not wants_transposed_packed(16, shapes, "2bit", H200)
    assert wants_transposed_packed(1, shapes, "1.6bit", H200)  # x in the kernel, 64 columns
    assert not wants_transposed_packed(4, shapes, "1.6bit", H200)
    assert wants_transposed_packed(16, None, "2bit", H200)  # sizes unknown: the copy, in case
    assert not wants_transposed_packed(129, None, "2bit", H200)
    cpu = SimpleNamespace(platform="cpu", device_kind="cpu")
    assert not wants_transposed_packed(16, [(8192, 57344)], "2bit", cpu)
    assert not wants_transposed_packed(16, None, "2bit", cpu)


def test_only_the_linears_the_mosaic_kernel_takes_hold_the_transposed_copy(
    trained_like: Transformer, monkeypatch
) -> None:
    """``split_layers(transposed=mosaic_linears(batch))`` gives the copy to the packed linears
    (after fusion) for which the device's choice is the Mosaic kernel, and to no other: asked
    with each linear's true K (1.6-bit rows are padded, so the bytes alone do not give it), N
    and layout at M = batch. Here a choice that takes only the fused q|k|v."""
    import kernels_pallas.mosaic_matmul as mosaic
    from trilm_jax.inference.generate import mosaic_linears

    asked = []

    def choice(layout, m, k, n, device):
        asked.append((layout, m, k, n))
        return mosaic.MosaicConfig(int8=True) if n == 3 * CONFIG.d_model else None

    monkeypatch.setattr(mosaic, "preferred_mosaic_config", choice)
    packed, _ = pack_model(trained_like, "1.6bit")
    graphdef, states = packed.split_layers(fuse=True, transposed=mosaic_linears(4, H200))
    block = nnx.merge(graphdef, states[0])
    assert block.attn.qkv.packed_t is not None
    np.testing.assert_array_equal(
        np.asarray(block.attn.qkv.packed_t[...]), np.asarray(block.attn.qkv.packed[...]).T
    )
    assert block.attn.o.packed_t is None
    d = CONFIG.d_model
    assert layouts.rows_per_plane(d, "1.6bit") * 5 != d  # K is not 5 R here
    assert sorted(set(asked)) == [("1.6bit", 4, d, d), ("1.6bit", 4, d, 3 * d)]
    assert len(asked) == 2 * CONFIG.n_layers
