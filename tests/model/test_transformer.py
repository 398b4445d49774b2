from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from trilm_jax.config import CONFIGS_DIR, ModelConfig, load_config
from trilm_jax.model.transformer import Transformer, count_params, flops_per_token

MICRO = ModelConfig(
    vocab_size=258, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=96, max_seq_len=32
)


def numpy_forward(params: dict, cfg: ModelConfig, tokens: np.ndarray) -> np.ndarray:
    """Float64 numpy LLaMA forward pass, written from the equations (independent of the model)."""

    def rms(x, scale):
        return x / np.sqrt(np.mean(x * x, -1, keepdims=True) + cfg.norm_eps) * scale

    def tern(w):
        if cfg.linear == "float":
            return w
        gamma = cfg.ternary_eps + np.abs(w).mean()
        return gamma * np.clip(np.round(w / gamma), -1, 1)

    def rope(x):  # x [T, H, Dh]
        t, _, dh = x.shape
        half = dh // 2
        freq = 1.0 / cfg.rope_theta ** (np.arange(half) / half)
        ang = np.arange(t)[:, None] * freq[None]
        cos, sin = np.cos(ang)[:, None], np.sin(ang)[:, None]
        x1, x2 = x[..., :half], x[..., half:]
        return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)

    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    hd, nh, nkv = cfg.head_dim, cfg.n_heads, cfg.n_kv_heads
    out = []
    for seq in tokens:
        t = len(seq)
        h = p["embed"][seq]
        for layer in range(cfg.n_layers):
            b = jax.tree.map(lambda a, layer=layer: a[layer], p["blocks"])
            x = rms(h, b["attn_norm"]["scale"])
            q = rope((x @ tern(b["attn"]["q"]["kernel"])).reshape(t, nh, hd))
            k = rope((x @ tern(b["attn"]["k"]["kernel"])).reshape(t, nkv, hd))
            v = (x @ tern(b["attn"]["v"]["kernel"])).reshape(t, nkv, hd)
            heads = []
            for i in range(nh):
                j = i // (nh // nkv)
                s = q[:, i] @ k[:, j].T / np.sqrt(hd)
                s = np.where(np.tril(np.ones((t, t), bool)), s, -np.inf)
                a = np.exp(s - s.max(-1, keepdims=True))
                heads.append((a / a.sum(-1, keepdims=True)) @ v[:, j])
            h = h + np.concatenate(heads, -1) @ tern(b["attn"]["o"]["kernel"])
            x = rms(h, b["mlp_norm"]["scale"])
            g = x @ tern(b["mlp"]["gate"]["kernel"])
            u = x @ tern(b["mlp"]["up"]["kernel"])
            h = h + (g / (1 + np.exp(-g)) * u) @ tern(b["mlp"]["down"]["kernel"])
        head = p["embed"].T if cfg.tie_embeddings else p["head"]
        out.append(rms(h, p["final_norm"]["scale"]) @ head)
    return np.stack(out)


@pytest.mark.parametrize("linear", ["ternary", "float"])
@pytest.mark.parametrize("tie", [False, True])
def test_forward_matches_numpy_reference(linear, tie):
    cfg = ModelConfig(**{**MICRO.__dict__, "linear": linear, "tie_embeddings": tie})
    model = Transformer(cfg, nnx.Rngs(0))
    tokens = np.random.default_rng(0).integers(0, 258, (2, 12))
    logits, _ = model(tokens)
    expected = numpy_forward(nnx.to_pure_dict(nnx.state(model)), cfg, tokens)
    np.testing.assert_allclose(np.asarray(logits), expected, rtol=2e-4, atol=2e-4)


def test_trilm_and_floatlm_share_shapes_and_counts():
    tri = Transformer(MICRO, nnx.Rngs(0))
    flo = Transformer(ModelConfig(**{**MICRO.__dict__, "linear": "float"}), nnx.Rngs(0))
    shapes = lambda m: jax.tree.map(lambda a: a.shape, nnx.to_pure_dict(nnx.state(m)))  # noqa: E731
    assert shapes(tri) == shapes(flo)
    n_arrays = sum(a.size for a in jax.tree.leaves(nnx.state(tri)))
    assert n_arrays == count_params(MICRO)["total"]
    assert count_params(MICRO)["total"] == count_params(flo.config)["total"]


def test_kv_cache_decoding_equals_full_forward():
    model = Transformer(MICRO, nnx.Rngs(1))
    tokens = np.random.default_rng(1).integers(0, 258, (2, 10))
    full, _ = model(tokens)
    cache = model.init_cache(2, 16)
    prefix, cache = model(tokens[:, :6], cache=cache, cache_index=0)
    steps = [prefix]
    for i in range(6, 10):
        logits, cache = model(tokens[:, i : i + 1], cache=cache, cache_index=i)
        steps.append(logits)
    np.testing.assert_allclose(np.concatenate(steps, 1), np.asarray(full), rtol=1e-5, atol=1e-5)


def test_unrolled_layers_with_per_layer_cache_match_the_numpy_reference():
    """``layers=split_layers()`` (the decode path) runs the same network as the scan: against
    the float64 reference, and with a per-layer KV cache, token by token."""
    model = Transformer(MICRO, nnx.Rngs(2))
    tokens = np.random.default_rng(2).integers(0, 258, (2, 9))
    graphdef, states = model.split_layers(fuse=True)  # latent ternary weights: nothing fuses
    assert len(states) == MICRO.n_layers
    layers = [nnx.merge(graphdef, s) for s in states]
    assert layers[0].attn.qkv is None and layers[0].attn.q is not None
    expected = numpy_forward(nnx.to_pure_dict(nnx.state(model)), MICRO, tokens)
    full, _ = model(tokens, layers=layers)
    np.testing.assert_allclose(np.asarray(full), expected, rtol=2e-4, atol=2e-4)
    cache = model.init_cache(2, 12, per_layer=True)
    assert isinstance(cache.key, list) and cache.key[0].shape == (2, 12, 2, 16)
    steps, (prefix, cache) = [], model(tokens[:, :5], cache=cache, cache_index=0, layers=layers)
    steps.append(prefix)
    for i in range(5, 9):
        logits, cache = model(tokens[:, i : i + 1], cache=cache, cache_index=i, layers=layers)
        steps.append(logits)
    np.testing.assert_allclose(np.concatenate(steps, 1), expected, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("linear", ["ternary", "float"])
def test_fused_projections_match_the_numpy_reference(linear):
    """q, k, v as one linear and gate, up as another (``split_layers(fuse=True)``, frozen
    weights; grouped-query attention, so q is wider than k and v) compute the same logits."""
    from trilm_jax.inference.generate import freeze_weights

    cfg = ModelConfig(**{**MICRO.__dict__, "linear": linear})
    model = Transformer(cfg, nnx.Rngs(3))
    tokens = np.random.default_rng(3).integers(0, 258, (2, 7))
    expected = numpy_forward(nnx.to_pure_dict(nnx.state(model)), cfg, tokens)
    frozen = freeze_weights(model)
    graphdef, states = frozen.split_layers(fuse=True)
    layers = [nnx.merge(graphdef, s) for s in states]
    assert layers[1].attn.q is None and layers[1].mlp.gate is None
    assert layers[1].attn.qkv.kernel[...].shape == (64, 4 * 16 + 2 * 2 * 16)
    assert layers[1].mlp.gate_up.kernel[...].shape == (64, 2 * 96)
    got, _ = frozen(tokens, layers=layers)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=2e-4, atol=2e-4)


def test_logical_axis_names_on_every_parameter():
    specs = nnx.get_partition_spec(nnx.state(Transformer(MICRO, nnx.Rngs(0))))
    flat = {"/".join(map(str, k)): v.get_value() for k, v in nnx.to_flat_state(specs)}
    assert tuple(flat["embed"]) == ("vocab", "embed")
    assert tuple(flat["head"]) == ("embed", "vocab")
    assert tuple(flat["blocks/attn/q/kernel"]) == ("layers", "embed", "heads")
    assert tuple(flat["blocks/attn/k/kernel"]) == ("layers", "embed", "kv")
    assert tuple(flat["blocks/mlp/down/kernel"]) == ("layers", "mlp", "embed")
    assert tuple(flat["final_norm/scale"]) == ("norm",)


PRESETS = sorted((CONFIGS_DIR / "models").glob("*.yaml"))


@pytest.mark.parametrize("path", PRESETS, ids=[p.stem for p in PRESETS])
def test_preset_parameter_count_matches_published(path: Path):
    cfg = load_config(path).model
    if cfg.published_n_params is None:
        pytest.skip(f"{path.name} is not a published size")
    total = count_params(cfg)["total"]
    assert abs(total - cfg.published_n_params) / cfg.published_n_params < 0.05, (
        f"{path.name}: counted {total:,}, published {cfg.published_n_params:,}"
    )


def test_flops_per_token_formula():
    cfg = MICRO
    d, f, v, layers = cfg.d_model, cfg.d_ff, cfg.vocab_size, cfg.n_layers
    kv = cfg.n_kv_heads * cfg.head_dim
    matmul = layers * (2 * d * d + 2 * d * kv + 3 * d * f) + d * v
    assert flops_per_token(cfg, 32) == 6 * matmul + 12 * layers * d * 32
