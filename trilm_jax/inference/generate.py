"""Sampling with a KV cache: one jitted prefill plus a ``lax.fori_loop`` of single-token steps.

The layers run unrolled, each from its own copy of its parameters (``Transformer.split_layers``;
the copies cost the blocks' memory once more): a scan over the stacked weights copies each
layer's slice at every token, which made 8 chained single-token matmuls 2.8x (bf16) and 1.8x
(2-bit packed) slower on an H100, and an 8-layer 2-bit model's token 1.6x slower
(docs/benchmarks.md, "Decoding end to end"). Those copies fuse q, k, v into one matmul and
gate, up into another (``fuse_projections``), 4 launches a block instead of 7.

Before decoding, ternary weights are replaced by their effective values ``gamma * trits``
(:func:`freeze_weights`), the exact numbers the training forward pass uses, so the decode loop
does not re-quantize at every token.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from trilm_jax.config import ModelConfig
from trilm_jax.model.transformer import Linear, Transformer


def freeze_weights(model: Transformer) -> Transformer:
    """A copy of ``model`` whose linears hold their effective weights and do not re-quantize."""
    frozen = nnx.clone(model)
    for _, module in nnx.iter_graph(frozen):
        if isinstance(module, Linear) and module.ternary:
            module.kernel[...] = module.effective_weight()
            module.ternary = False
    return frozen


def sample_token(logits: jax.Array, key: jax.Array, temperature: float, top_k: int) -> jax.Array:
    """logits [B, V] -> token ids [B]; greedy when temperature == 0."""
    if temperature == 0:
        return jnp.argmax(logits, axis=-1)
    logits = logits / temperature
    if top_k > 0:
        kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    return jax.random.categorical(key, logits, axis=-1)


@partial(
    jax.jit,
    static_argnames=(
        "graphdef",
        "layer_graphdef",
        "max_new_tokens",
        "temperature",
        "top_k",
        "compute_dtype",
    ),
)
def _generate(
    graphdef,
    state,
    layer_graphdef,
    layer_states,
    prompt,
    key,
    *,
    max_new_tokens,
    temperature,
    top_k,
    compute_dtype,
):
    model: Transformer = nnx.merge(graphdef, state)
    layers = [nnx.merge(layer_graphdef, s) for s in layer_states]
    batch, prompt_len = prompt.shape
    cache = model.init_cache(batch, prompt_len + max_new_tokens, compute_dtype, per_layer=True)
    logits, cache = model(
        prompt, compute_dtype=compute_dtype, cache=cache, cache_index=0, layers=layers
    )
    key, sub = jax.random.split(key)
    first = sample_token(logits[:, -1], sub, temperature, top_k)
    out = jnp.zeros((batch, max_new_tokens), jnp.int32).at[:, 0].set(first)

    def body(i, carry):
        out, cache, key = carry
        position = prompt_len + i - 1
        previous = jax.lax.dynamic_slice_in_dim(out, i - 1, 1, axis=1)  # [B, 1]
        logits, cache = model(
            previous, compute_dtype=compute_dtype, cache=cache, cache_index=position, layers=layers
        )
        key, sub = jax.random.split(key)
        token = sample_token(logits[:, -1], sub, temperature, top_k)
        return out.at[:, i].set(token), cache, key

    out, _, _ = jax.lax.fori_loop(1, max_new_tokens, body, (out, cache, key))
    return out


@dataclasses.dataclass(frozen=True)
class DecodingModel:
    """A model laid out for decoding (:func:`prepare_decoding`): its graph and state, and its
    blocks as one graph and one state a layer (each array its own copy, projections fused)."""

    config: ModelConfig
    graphdef: nnx.GraphDef
    state: nnx.State
    layer_graphdef: nnx.GraphDef
    layer_states: list


def prepare_decoding(
    model: Transformer,
    fuse_projections: bool = True,
    transposed_packed: bool | Callable[[Linear], bool] = False,
) -> DecodingModel:
    """Split ``model`` for :func:`generate` once: per-layer copies of the blocks' parameters,
    with q, k, v as one matmul and gate, up as another where the weights allow
    (``fuse_projections``; frozen or packed weights, ``Transformer.split_layers``). Reuse it
    across calls: the split runs hundreds of small device operations from the host.
    ``transposed_packed``: packed linears also hold their bytes transposed, for the Mosaic
    kernel (``Linear.add_transposed``); a predicate (:func:`mosaic_linears`): the linears
    (after fusion) for which it is true, so that no other layer pays the copy's memory."""
    graphdef, state = nnx.split(model)
    layer_graphdef, layer_states = model.split_layers(
        fuse=fuse_projections, transposed=transposed_packed
    )
    return DecodingModel(model.config, graphdef, state, layer_graphdef, layer_states)


def block_linear_shapes(config: ModelConfig, fused: bool = True) -> list[tuple[int, int]]:
    """``(K, N)`` of a block's linears, with q|k|v and gate|up as one each where ``fused``."""
    d, f = config.d_model, config.d_ff
    q, kv = config.n_heads * config.head_dim, config.n_kv_heads * config.head_dim
    inputs = [(d, q + 2 * kv), (d, 2 * f)] if fused else [(d, q), (d, kv), (d, f)]
    return [*inputs, (q, d), (f, d)]


def takes_mosaic(layout: str, batch: int, k: int, n: int, device: jax.Device | None = None) -> bool:
    """Whether ``ternary_matmul`` (given the transposed copy) gives ``[batch, K] x [K, N]`` in
    ``layout`` the Mosaic kernel on ``device`` (jax's first by default): a Hopper GPU whose
    measured table or, where it has no entry, the rules pick it
    (``kernels_pallas.mosaic_matmul.preferred_mosaic_config``, which decides per shape and M
    at every call too)."""
    from kernels_pallas.mosaic_matmul import is_hopper, preferred_mosaic_config

    device = device or jax.devices()[0]
    if not is_hopper(device):
        return False
    return preferred_mosaic_config(layout, batch, k, n, device) is not None


def mosaic_linears(batch: int, device: jax.Device | None = None) -> Callable[[Linear], bool]:
    """The predicate for :func:`prepare_decoding`'s ``transposed_packed``: whether a packed
    linear takes the Mosaic kernel when decoding ``batch`` sequences at a time on ``device``
    (:func:`takes_mosaic` for its layout, input size and columns), so that only those hold the
    transposed copy (the rest would carry a second copy of their bytes for nothing). Decoding's
    steps decide (M = batch); the prompt's pass, at M = batch x prompt length, takes the Mosaic
    kernel only on linears that hold the copy."""
    device = device or jax.devices()[0]

    def takes(linear: Linear) -> bool:
        layout = linear.packed_layout
        if layout is None:
            return False
        return takes_mosaic(layout, batch, linear.d_in, linear.packed.shape[-1], device)

    return takes


def wants_transposed_packed(
    batch: int,
    shapes: Sequence[tuple[int, int]] | None = None,
    layout: str = "2bit",
    device: jax.Device | None = None,
) -> bool:
    """Whether decoding ``batch`` sequences at a time may gain from the packed bytes'
    transposed copy on ``device``: some linear of ``shapes`` (``(K, N)``, e.g.
    :func:`block_linear_shapes`) in ``layout`` takes the Mosaic kernel (:func:`takes_mosaic`).
    ``shapes=None`` (sizes unknown): a Hopper GPU and a batch in the range where the kernel may
    be taken (``MOSAIC_SMALL_MIN_M`` to ``MOSAIC_MAX_M``), the copy in case."""
    from kernels_pallas.mosaic_matmul import MOSAIC_MAX_M, MOSAIC_SMALL_MIN_M, is_hopper

    device = device or jax.devices()[0]
    if shapes is None:
        return is_hopper(device) and MOSAIC_SMALL_MIN_M <= batch <= MOSAIC_MAX_M
    return any(takes_mosaic(layout, batch, k, n, device) for k, n in shapes)


def generate(
    model: Transformer | DecodingModel,
    prompt_ids: np.ndarray,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int = 0,
    seed: int = 0,
    compute_dtype=jnp.float32,
    fuse_projections: bool = True,
    transposed_packed: bool | None = None,
) -> np.ndarray:
    """Continue ``prompt_ids`` ([T] or [B, T]) by ``max_new_tokens``; returns the new ids.

    ``model``: a model, or one already prepared by :func:`prepare_decoding` (for repeated
    calls). ``fuse_projections`` (a model only): decode with q, k, v as one matmul and gate, up
    as another where the weights allow: the same function with 3 fewer launches a block.
    ``transposed_packed`` (a model only): packed linears also hold their bytes transposed, for
    the Mosaic kernel; ``None`` (default): those the kernel will take at this batch
    (:func:`mosaic_linears`), none off a Hopper GPU."""
    prompt = np.atleast_2d(np.asarray(prompt_ids, np.int32))
    limit = model.config.max_seq_len
    if prompt.shape[1] == 0:
        raise ValueError("the prompt is empty; give at least one token")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens}: expected at least 1")
    if prompt.shape[1] + max_new_tokens > limit:
        raise ValueError(
            f"prompt ({prompt.shape[1]} tokens) + max_new_tokens ({max_new_tokens}) exceeds the "
            f"model's max_seq_len={limit}"
        )
    if not isinstance(model, DecodingModel):
        transposed = transposed_packed
        if transposed is None:
            transposed = mosaic_linears(prompt.shape[0])
        model = prepare_decoding(model, fuse_projections, transposed)
    out = _generate(
        model.graphdef,
        model.state,
        model.layer_graphdef,
        model.layer_states,
        jnp.asarray(prompt),
        jax.random.key(seed),
        max_new_tokens=max_new_tokens,
        temperature=float(temperature),
        top_k=int(top_k),
        compute_dtype=jnp.dtype(compute_dtype),
    )
    out = np.asarray(out)
    return out[0] if np.ndim(prompt_ids) == 1 else out
