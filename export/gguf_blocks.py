"""llama.cpp's ternary block types TQ2_0 and TQ1_0, encoded from exact trits and a given scale.

Each row of a GGUF matrix (one output feature, ``K`` inputs, contiguous) is cut into blocks of
``QK_K = 256`` weights; block ``b`` of a row stores the codes ``c = trit + 1`` of weights
``x[256 b : 256 b + 256]`` followed by its scale ``d`` as float16, and decodes to ``d * trit``
(ggml/src/ggml-common.h ``block_tq2_0`` / ``block_tq1_0``; ggml-quants.c
``dequantize_row_tq2_0`` / ``dequantize_row_tq1_0``; gguf-py ``gguf/quants.py``):

``TQ2_0`` (66 bytes): ``qs[64]``: for half ``h`` in {0, 1} and ``i`` < 32, byte ``32 h + i`` holds
  ``c[128 h + 32 j + i] << 2 j`` for ``j`` = 0..3; then ``d``.
``TQ1_0`` (54 bytes): base-3 bytes ``q = ceil(v * 256 / 243)`` of ``v = sum_j c_j 3^(4 - j)``:
  ``qs[0:32]``: byte ``i`` packs ``c[32 j + i]``, j = 0..4 (weights 0..159);
  ``qs[32:48]``: byte ``i`` packs ``c[160 + 16 j + i]``, j = 0..4 (weights 160..239);
  ``qh[0:4]``: byte ``i`` packs ``c[240 + 4 j + i]``, j = 0..3, weights ``3^(4 - j)`` (240..255);
  then ``d``.

Unlike ``gguf.quants.quantize`` (which sets ``d = max|x|`` per block), the trits and ``d`` here
are ours: ``d`` is the TriLM scale gamma of the weights in that block.
"""

from __future__ import annotations

import numpy as np

from export.formats import QK_K, TQ1_0_BLOCK_BYTES, TQ2_0_BLOCK_BYTES

_POW3 = np.array([81, 27, 9, 3, 1], dtype=np.int64)


def _base3_byte(v: np.ndarray) -> np.ndarray:
    return ((v * 256 + 242) // 243).astype(np.uint8)  # ceil(v * 256 / 243), as ggml


def _blocks(trits: np.ndarray) -> np.ndarray:
    """int trits ``[M, K]`` (K % 256 == 0) -> codes ``[M * K / 256, 256]`` int64."""
    m, k = trits.shape
    if k % QK_K:
        raise ValueError(f"rows of {k} weights are not a multiple of the block size {QK_K}")
    return trits.astype(np.int64).reshape(m * (k // QK_K), QK_K) + 1


def _scale_bytes(d: np.ndarray, n_blocks: int) -> np.ndarray:
    return np.asarray(d, np.float16).reshape(n_blocks, 1).view(np.uint8)


def encode_tq2_0(trits: np.ndarray, d: np.ndarray) -> np.ndarray:
    """int trits ``[M, K]`` and float scales ``[M, K / 256]`` -> uint8 ``[M, K / 256 * 66]``."""
    m, k = trits.shape
    codes = _blocks(trits).reshape(-1, 2, 4, 32)  # [block, half, j, i]
    shifts = np.array([0, 2, 4, 6], dtype=np.int64).reshape(1, 1, 4, 1)
    qs = np.bitwise_or.reduce(codes << shifts, axis=2).astype(np.uint8).reshape(-1, 64)
    out = np.concatenate([qs, _scale_bytes(d, qs.shape[0])], axis=1)
    return out.reshape(m, (k // QK_K) * TQ2_0_BLOCK_BYTES)


def encode_tq1_0(trits: np.ndarray, d: np.ndarray) -> np.ndarray:
    """int trits ``[M, K]`` and float scales ``[M, K / 256]`` -> uint8 ``[M, K / 256 * 54]``."""
    m, k = trits.shape
    codes = _blocks(trits)
    qs0 = np.tensordot(codes[:, :160].reshape(-1, 5, 32), _POW3, axes=([1], [0]))
    qs1 = np.tensordot(codes[:, 160:240].reshape(-1, 5, 16), _POW3, axes=([1], [0]))
    qh = np.tensordot(codes[:, 240:].reshape(-1, 4, 4), _POW3[:4], axes=([1], [0]))
    q = _base3_byte(np.concatenate([qs0, qs1, qh], axis=1))  # [blocks, 52]
    out = np.concatenate([q, _scale_bytes(d, q.shape[0])], axis=1)
    return out.reshape(m, (k // QK_K) * TQ1_0_BLOCK_BYTES)


ENCODERS = {"TQ2_0": encode_tq2_0, "TQ1_0": encode_tq1_0}
BLOCK_BYTES = {"TQ2_0": TQ2_0_BLOCK_BYTES, "TQ1_0": TQ1_0_BLOCK_BYTES}
