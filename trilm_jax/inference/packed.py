"""Serving from packed ternary weights: every ternary linear of a model holds its trits packed
(2 or 1.6 bits a weight, ``kernels_pallas/layouts.py``) and multiplies with
``kernels_pallas.ternary_matmul`` (the Pallas kernels on a GPU), so decoding reads 8x / 10x
fewer weight bytes than from bf16.

A linear stays in float (its effective weight ``gamma * trits``, the same numbers) where the
kernels cannot take it: K or N not a multiple of 256. Gammas per *input* shard (row-parallel
matrices under ``ternary_scale_shards > 1``, as Spectra trained) scale the activations' columns
before the kernel, which scales output columns only.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm import tqdm

from kernels_pallas import layouts
from kernels_pallas.triton_matmul import KERNEL_K_MULTIPLE, KERNEL_N_MULTIPLE
from trilm_jax.model.transformer import Linear, Transformer


def servable(k: int, n: int) -> str | None:
    """Why a ``[K, N]`` linear cannot be served packed, or None if it can."""
    if k % KERNEL_K_MULTIPLE or n % KERNEL_N_MULTIPLE:
        return f"K={k} and N={n} must be multiples of {KERNEL_K_MULTIPLE}"
    return None


def _linears(model: Transformer) -> list[tuple[str, Linear]]:
    return [
        (".".join(str(p) for p in path), module)
        for path, module in nnx.iter_graph(model)
        if isinstance(module, Linear)
    ]


def pack_model(
    model: Transformer, layout: str = "2bit", progress: bool = False
) -> tuple[Transformer, dict[str, str]]:
    """A copy of a trained ``model`` (latent weights) whose ternary linears hold packed trits, and
    ``{linear path: why it stayed float}`` for those the kernels cannot take (they hold their
    effective weight). The trits and gammas are the training forward pass's, bit for bit.
    ``progress``: a bar over the linears."""
    from export.ternary_codec import pack_stack, ternary_parts

    layouts.check_layout(layout)
    if model.config.linear != "ternary":
        raise ValueError(
            f"model {model.config.name!r} is a FloatLM: it has no ternary weights to pack"
        )
    packed_model = nnx.clone(model)
    kept: dict[str, str] = {}
    linears = [(p, m) for p, m in _linears(packed_model) if m.ternary]
    for path, linear in tqdm(
        linears, desc=f"packing {layout}", unit="linear", disable=not progress
    ):
        latent = np.asarray(linear.kernel[...], np.float32)
        stacked = latent if latent.ndim == 3 else latent[None]
        k, n = stacked.shape[1:]
        why = servable(k, n)
        if why is not None:
            kept[path] = why
            linear.kernel[...] = linear.effective_weight()
            linear.ternary = False
            continue
        trits, gamma = ternary_parts(stacked, linear.eps, linear.n_scale_shards, linear.shard_axis)
        packed = pack_stack(trits, layout)
        if latent.ndim == 2:
            packed, gamma = packed[0], gamma[0]
        linear.use_packed(jnp.asarray(packed), jnp.asarray(gamma), layout)
    return packed_model, kept


def attach_packed(
    model: Transformer, tensors: dict[str, tuple[np.ndarray, np.ndarray]], layout: str
) -> dict[str, str]:
    """Give the linears of a model loaded from a native packed file (effective weights) the
    file's packed trits and gammas: ``tensors`` maps a linear path (``blocks.attn.q``) to
    (uint8 ``[L, R, N]``, float32 ``[L, G]``). Returns the paths kept in float, with why."""
    kept: dict[str, str] = {}
    for path, linear in _linears(model):
        if path not in tensors:
            continue
        packed, gamma = tensors[path]
        k, n = linear.kernel.shape[-2:]
        why = servable(k, n)
        if why is not None:
            kept[path] = why
            continue
        linear.use_packed(jnp.asarray(packed), jnp.asarray(gamma), layout)
    return kept
