"""Latent weights -> (trits, gamma) exactly as the training forward pass computes them, and the
packing of stacked trits in the layouts of kernels_pallas/layouts.py.

The forward pass (trilm_jax/model/ternary.py) uses ``gamma * clip(round(W / gamma), -1, 1)`` with
``gamma = eps + mean|W|`` per matrix, or per tensor-parallel shard of ``shard_axis`` (Spectra,
arXiv 2407.12327, Sec. 3.1). This module calls the same functions, so the exported trits and
gammas rebuild the effective weight bit for bit (``gamma * float32(trit)`` is one IEEE multiply).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from kernels_pallas.layouts import pack, rows_per_plane, unpack
from trilm_jax.model.ternary import absmean_gamma, ternary_values


def _axis_name(shard_axis: int) -> str:
    return "out" if shard_axis % 2 == 1 else "in"  # of a [.., in, out] matrix: -1 out, -2 in


def scale_axis_name(shard_axis: int) -> str:
    """``"out"`` (columns, shard_axis -1) or ``"in"`` (rows, shard_axis -2) of ``[in, out]``."""
    if shard_axis not in (-1, -2):
        raise ValueError(f"shard_axis={shard_axis}: expected -1 (out) or -2 (in)")
    return _axis_name(shard_axis)


def ternary_parts(
    latent_weight: np.ndarray, eps: float, n_scale_shards: int, shard_axis: int
) -> tuple[np.ndarray, np.ndarray]:
    """Stacked latent ``[L, in, out]`` -> (trits int8 ``[L, in, out]``, gamma float32 ``[L, G]``).

    ``G = n_scale_shards``; gamma ``[l, g]`` scales shard ``g`` of ``shard_axis`` of layer ``l``.
    """
    w = np.asarray(latent_weight, np.float32)
    if w.ndim != 3:
        raise ValueError(f"expected a stacked [L, in, out] weight, got shape {w.shape}")
    # gamma from the whole stack, exactly as Linear.effective_weight computes it (a reduction
    # over a [1, in, out] slice can round differently in the last bit); the trits, elementwise
    # and so identical either way, one layer at a time, so that the float32 temporaries of
    # W / gamma are one matrix, not the stack (a 3.9B model's stacked FFN weight is 3.4 GB).
    n_layers = w.shape[0]
    gamma = np.asarray(absmean_gamma(jnp.asarray(w), eps, n_scale_shards, shard_axis), np.float32)
    trits = np.empty(w.shape, np.int8)
    for layer in range(n_layers):
        trits[layer] = np.asarray(
            ternary_values(jnp.asarray(w[layer : layer + 1]), jnp.asarray(gamma[layer : layer + 1]))
        )[0]
    if n_scale_shards == 1:
        return trits, gamma.reshape(n_layers, 1)
    size = w.shape[shard_axis]
    per_shard = np.moveaxis(gamma, shard_axis % 3, -1).reshape(n_layers, -1)
    return trits, np.ascontiguousarray(per_shard[:, :: size // n_scale_shards])


def expand_gamma(gamma: np.ndarray, shape: tuple[int, int, int], shard_axis: int) -> np.ndarray:
    """``[L, G]`` gamma -> float32 array broadcastable to the stacked ``shape`` ``[L, in, out]``."""
    n_layers, groups = gamma.shape
    size = shape[shard_axis]
    if size % groups:
        raise ValueError(f"{groups} scale groups do not divide axis {shard_axis} of {shape}")
    full = np.repeat(np.asarray(gamma, np.float32), size // groups, axis=1)  # [L, size]
    return full.reshape((n_layers, 1, size) if shard_axis % 3 == 2 else (n_layers, size, 1))


def effective_weight(trits: np.ndarray, gamma: np.ndarray, shard_axis: int) -> np.ndarray:
    """``gamma * trits`` in float32 ``[L, in, out]``: the forward pass's weight, bit for bit."""
    return expand_gamma(gamma, trits.shape, shard_axis) * trits.astype(np.float32)


def pack_stack(trits: np.ndarray, layout: str) -> np.ndarray:
    """int trits ``[L, K, N]`` -> uint8 ``[L, R, N]`` in ``layout`` ("2bit" or "1.6bit")."""
    return np.stack([pack(t, layout) for t in trits])


def unpack_stack(packed: np.ndarray, k: int, layout: str) -> np.ndarray:
    """uint8 ``[L, R, N]`` -> int8 trits ``[L, K, N]``; invalid codes raise ValueError."""
    return np.stack([unpack(p, k, layout) for p in packed])


def packed_stack_shape(shape: tuple[int, int, int], layout: str) -> tuple[int, int, int]:
    """Shape of :func:`pack_stack`'s result for a stacked ``[L, K, N]`` matrix."""
    n_layers, k, n = shape
    return n_layers, rows_per_plane(k, layout), n
