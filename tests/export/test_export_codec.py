"""Codecs against independent numpy references: the quantizer split, both packed layouts, and
the GGUF TQ blocks (checked with the gguf package's own dequantizer)."""

from __future__ import annotations

import gguf
import numpy as np
import pytest
from gguf.quants import dequantize

from export.gguf_blocks import encode_tq1_0, encode_tq2_0
from export.ternary_codec import effective_weight, pack_stack, ternary_parts, unpack_stack
from kernels_pallas.layouts import rows_per_plane
from trilm_jax.model.ternary import ternarize


def _reference_pack(trits: np.ndarray, layout: str) -> np.ndarray:
    """Plain loops over the layout definition (kernels_pallas/layouts.py docstring)."""
    k, n = trits.shape
    planes = 4 if layout == "2bit" else 5
    r = k // 4 if layout == "2bit" else 32 * -(-k // 160)
    out = np.zeros((r, n), np.uint8)
    for row in range(r):
        for col in range(n):
            digits = [
                int(trits[j * r + row, col]) + 1 if j * r + row < k else 1 for j in range(planes)
            ]
            if layout == "2bit":
                out[row, col] = sum(d << (2 * j) for j, d in enumerate(digits))
            else:
                v = sum(d * 3 ** (4 - j) for j, d in enumerate(digits))
                out[row, col] = -(-v * 256 // 243)
    return out


@pytest.mark.parametrize("layout", ["2bit", "1.6bit"])
@pytest.mark.parametrize("k", [4, 8, 28, 160, 164, 324])
def test_pack_round_trip_matches_reference(layout, k):
    if layout == "2bit" and k % 4:
        pytest.skip("2bit needs K % 4 == 0")
    rng = np.random.default_rng(k)
    trits = rng.integers(-1, 2, size=(2, k, 3)).astype(np.int8)
    packed = pack_stack(trits, layout)
    assert packed.dtype == np.uint8 and packed.shape == (2, rows_per_plane(k, layout), 3)
    for layer in range(2):
        np.testing.assert_array_equal(packed[layer], _reference_pack(trits[layer], layout))
    np.testing.assert_array_equal(unpack_stack(packed, k, layout), trits)


@pytest.mark.parametrize(("shards", "axis"), [(1, -1), (2, -1), (4, -2)])
def test_ternary_parts_rebuild_the_forward_weight_bitwise(shards, axis):
    rng = np.random.default_rng(0)
    w = (0.02 * rng.standard_normal((3, 16, 8))).astype(np.float32)
    trits, gamma = ternary_parts(w, 1e-5, shards, axis)
    assert gamma.shape == (3, shards) and trits.dtype == np.int8
    # numpy reference of gamma = eps + mean|W| per matrix / per shard of the axis
    for layer in range(3):
        parts = np.split(np.abs(w[layer]), shards, axis=axis)
        ref = np.array([1e-5 + p.mean() for p in parts], np.float32)
        np.testing.assert_allclose(gamma[layer], ref, rtol=1e-6)
    rebuilt = effective_weight(trits, gamma, axis)
    forward = np.asarray(ternarize(w, 1e-5, shards, axis))
    assert np.array_equal(rebuilt.view(np.uint32), forward.view(np.uint32))


@pytest.mark.parametrize(
    ("encode", "qtype"),
    [
        (encode_tq2_0, gguf.GGMLQuantizationType.TQ2_0),
        (encode_tq1_0, gguf.GGMLQuantizationType.TQ1_0),
    ],
)
def test_tq_blocks_dequantize_to_f16_gamma_times_trits(encode, qtype):
    rng = np.random.default_rng(1)
    trits = rng.integers(-1, 2, size=(5, 768))
    d = rng.uniform(0.005, 0.05, size=(5, 3)).astype(np.float32)
    blocks = encode(trits, d)
    expected = np.repeat(d.astype(np.float16).astype(np.float32), 256, axis=1) * trits
    np.testing.assert_array_equal(dequantize(blocks, qtype), expected)
    # with d = 1 the bytes are exactly what gguf's own quantizer writes for the same trits
    ones = encode(trits, np.ones((5, 3), np.float32))
    np.testing.assert_array_equal(ones, gguf.quants.quantize(trits.astype(np.float32), qtype))
