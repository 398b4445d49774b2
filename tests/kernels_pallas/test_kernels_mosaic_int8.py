"""The s8 path of the Mosaic GPU kernel (``MosaicConfig(int8=True)``) on the CPU.

The kernel's s8 ``wgmma`` (register A operand) cannot run here: jax's CPU interpreter has no
Mosaic GPU ``wgmma`` at all. So this checks what can be checked without a GPU, each part
against an independent reference (float64 numpy, the layout's own unpacking of the trits):

- the decode PTX (``_int8_decode_asm`` and the plane-wise ``_int8_plane_asm`` blocks) through
  the emulator of test_kernels_ptx_decode.py: every byte value in every position of the word
  gives every plane's s8 weights (the codes ``T + 1``; for the 1.6-bit layout's planes 0 to 3
  the base-3 values of the byte's first j + 1 codes, from the layout's own unpacking), in the
  same byte order;
- x's preparation: ``int8_operands`` against its definition (row scale, rounding to int16,
  the 1.6-bit planes' folding, the signed byte split, padding, the sums of q), and the Pallas
  kernel that the GPU path runs (``int8_operands_pallas``, in interpret mode) against
  ``int8_operands``;
- the host arithmetic: the device part (those weights times x's bytes, int32 split-K
  partials) emulated in numpy, then the shipped ``finish_int8``, against the float64
  ``x @ (scale * T)``;
- that the kernel lowers (Pallas -> Mosaic GPU, with the Triton preparation kernel) for both
  layouts and both pipelines, and the errors of its int8 configuration.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels_pallas import layouts
from kernels_pallas.int8_prep import int8_operands_pallas
from kernels_pallas.mosaic_matmul import (
    FOLDED_PLANES,
    INT8_X_BYTES_MAX,
    INT8_X_MAX,
    SPREAD_ASM,
    MosaicConfig,
    _int8_decode_asm,
    _int8_plane_asm,
    finish_int8,
    fused_int8_epilogue,
    int8_operands,
    mosaic_ternary_matmul,
    padded_m,
)


def _ptx_helpers():
    """test_kernels_ptx_decode.py (the PTX emulator and its byte helpers), loaded by path: the
    tests run with ``--import-mode=importlib``, so sibling test modules are not importable."""
    name = "_mosaic_int8_ptx_helpers"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).with_name("test_kernels_ptx_decode.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_PTX = _ptx_helpers()
run_ptx = _PTX.run_ptx
_words_with_every_byte_at = _PTX._words_with_every_byte_at
_plane_trits = _PTX._plane_trits


def _register_bytes(reg: np.ndarray) -> np.ndarray:
    """A register's 4 bytes ``[n, 4]`` (byte i: bits 8i .. 8i+7), as int64."""
    reg = reg.astype(np.uint32)
    return np.stack([(reg >> np.uint32(8 * i)) & np.uint32(0xFF) for i in range(4)], axis=1).astype(
        np.int64
    )


def _s8_weights_of_trits(trits: np.ndarray, layout: str) -> np.ndarray:
    """The s8 kernel's weights ``[planes, ...]`` (int64) from each plane's trits ``[planes,
    ...]``: the codes ``c_j = T_j + 1``, except the 1.6-bit layout's planes 0 to 3, whose
    weight is the base-3 value of the first j + 1 codes, ``sum_(i <= j) c_i 3**(j - i)``."""
    codes = trits.astype(np.int64) + 1
    if layout == "2bit":
        return codes
    out = codes.copy()
    for j in range(1, 4):
        out[j] = 3 * out[j - 1] + codes[j]
    return out


# ----------------------------------------------------------------------------------------------
# Decode PTX


@pytest.mark.parametrize("layout", layouts.LAYOUTS)
@pytest.mark.parametrize("position", range(4))
def test_int8_ptx_gives_every_planes_codes(layout: str, position: int) -> None:
    """_int8_decode_asm: the packed word in $P, plane j's s8 weights in $j, byte i of the
    output from byte i of the word."""
    asm, outs = _int8_decode_asm(layout)
    planes = layouts.TRITS_PER_BYTE[layout]
    assert outs == planes
    words, reg = _words_with_every_byte_at(layout, position, seed=50 + position)
    out = run_ptx(asm, {f"${planes}": reg})
    trits = np.stack([_plane_trits(words, layout, j) for j in range(planes)])
    want = _s8_weights_of_trits(trits, layout)
    assert want.max() <= 127  # signed bytes
    for j in range(planes):
        np.testing.assert_array_equal(_register_bytes(out[f"${j}"]), want[j], err_msg=f"plane {j}")


@pytest.mark.parametrize("layout", layouts.LAYOUTS)
@pytest.mark.parametrize("position", range(4))
def test_int8_plane_wise_ptx_gives_every_planes_codes(layout: str, position: int) -> None:
    """The plane-wise s8 decode (in_flight): 2-bit: _int8_plane_asm(j) on the packed word;
    1.6-bit: SPREAD_ASM on the word, then each plane's block on the two state registers, the
    last plane's also on plane 3's weights."""
    planes = layouts.TRITS_PER_BYTE[layout]
    words, reg = _words_with_every_byte_at(layout, position, seed=60 + position)
    trits = np.stack([_plane_trits(words, layout, j) for j in range(planes)])
    want = _s8_weights_of_trits(trits, layout)
    spread = run_ptx(SPREAD_ASM, {"$2": reg})
    lo, hi, previous = spread["$0"], spread["$1"], None
    for j in range(planes):
        asm, outs, ins = _int8_plane_asm(layout, j)
        if layout == "2bit":
            assert (outs, ins) == (1, 1)
            out = run_ptx(asm, {"$1": reg})
        else:
            assert (outs, ins) == (1, 2 if j < planes - 1 else 3)
            operands = {"$1": lo, "$2": hi}
            if ins == 3:
                operands["$3"] = previous
            out = run_ptx(asm, operands)
            previous = out["$0"]
        np.testing.assert_array_equal(_register_bytes(out["$0"]), want[j], err_msg=f"plane {j}")


def test_int8_1p6bit_decode_is_18_instructions_a_word() -> None:
    """The digit-prefix decode (:func:`_int8_decode_asm`): 2 ``prmt`` to spread, then 3 a
    plane (two multiplies, one ``prmt``) and a ``mad`` for the last plane's digit; the ``mov``
    is a constant register, which ptxas drops."""
    asm, _ = _int8_decode_asm("1.6bit")
    ops = [
        line.split()[0]
        for line in asm.splitlines()
        if line.strip() and line.strip() not in "{}" and not line.startswith(".reg")
    ]
    work = [op for op in ops if not op.startswith("mov")]
    assert len(work) == 18, ops


# ----------------------------------------------------------------------------------------------
# x's preparation


def _random_x(rng: np.random.Generator, m: int, k: int) -> np.ndarray:
    """bf16-representable x (as float64) with rows of very different magnitudes, one of them all
    zeros where M allows, and a few outliers."""
    x = rng.standard_normal((m, k)) * 10.0 ** rng.uniform(-3, 3, (m, 1))
    x[rng.integers(0, m, 3), rng.integers(0, k, 3)] *= 50.0
    if m > 1:
        x[m // 2] = 0.0
    return np.asarray(jnp.asarray(x, jnp.bfloat16), np.float64)


def _padded(x: np.ndarray, layout: str, rows: int, m_pad: int) -> np.ndarray:
    """x in float64 padded to ``[m_pad, planes R]`` (column j R + r: plane j, row r)."""
    m, k = x.shape
    xp = np.zeros((m_pad, layouts.TRITS_PER_BYTE[layout] * rows))
    xp[:m, :k] = x
    return xp


def _halves(xq, m_pad: int) -> tuple[np.ndarray, np.ndarray]:
    """The low and high bytes ``[m_pad, planes R]`` (int64) of ``[planes, 2 m_pad, R]``."""
    xq = np.asarray(xq)
    assert xq.dtype == np.int8
    planes, two_m, rows = xq.shape
    assert two_m == 2 * m_pad
    flat = xq.astype(np.int64).transpose(1, 0, 2).reshape(two_m, planes * rows)
    return flat[:m_pad], flat[m_pad:]


def _unfolded(v: np.ndarray, layout: str) -> np.ndarray:
    """x quantized, ``q [m_pad, planes R]``, from the values ``v = 256 hi + lo`` that the
    kernel takes: ``q_j = v_j + 3 q_(j+1)`` for the folded planes, from the last one down."""
    planes = layouts.TRITS_PER_BYTE[layout]
    q = v.reshape(v.shape[0], planes, -1).copy()
    for j in reversed(range(FOLDED_PLANES[layout])):
        q[:, j] += 3 * q[:, j + 1]
    return q.reshape(v.shape)


def _plane_sums(q: np.ndarray, planes: int) -> np.ndarray:
    """Each plane's sums of q a row, ``[planes, m_pad]`` (the offset's form)."""
    return q.reshape(q.shape[0], planes, -1).sum(axis=2).T


@pytest.mark.parametrize("layout", layouts.LAYOUTS)
@pytest.mark.parametrize("m,k", [(1, 1000), (5, 1000), (13, 2048), (8, 520)])
def test_int8_operands_match_their_definition(layout: str, m: int, k: int) -> None:
    rng = np.random.default_rng(100 * m + k)
    x = _random_x(rng, m, k)
    rows = layouts.rows_per_plane(k, layout)
    planes = layouts.TRITS_PER_BYTE[layout]
    m_pad = padded_m(m)
    xq, xscale, offset = int8_operands(jnp.asarray(x, jnp.bfloat16), layout, rows, m_pad)
    assert xq.shape == (planes, 2 * m_pad, rows)
    assert xscale.shape == (m_pad,) and xscale.dtype == jnp.float32
    assert offset.shape == (planes, m_pad) and offset.dtype == jnp.int32
    x_max = INT8_X_MAX[layout]

    xp = _padded(x, layout, rows, m_pad)
    amax = np.abs(xp).max(axis=1)
    want_scale = np.where(amax > 0, amax / x_max, 1.0)
    scale = np.asarray(xscale, np.float64)
    np.testing.assert_allclose(scale, want_scale, rtol=1e-6)
    assert (scale[m:] == 1.0).all()

    lo, hi = _halves(xq, m_pad)
    assert hi.min() >= -127 and hi.max() <= 127
    v = 256 * hi + lo
    assert np.abs(v).max() <= INT8_X_BYTES_MAX
    q = _unfolded(v, layout)
    assert np.abs(q).max() <= x_max
    # round to nearest: |x / s - q| <= 1/2, slack for float32's x * (1 / s) (|x / s| < 2**15)
    err = np.abs(xp / scale[:, None] - q)
    assert err.max() <= 0.5 + 2.0**-7, err.max()
    # the full range is used: each nonzero row's largest |x| is +-x_max
    live = amax > 0
    peak = q[np.arange(m_pad), np.abs(xp).argmax(axis=1)]
    np.testing.assert_array_equal(np.abs(peak[live]), x_max)
    # padding: rows past M and K's padding columns hold zero bytes
    assert not lo[m:].any() and not hi[m:].any()
    assert not lo[:, k:].any() and not hi[:, k:].any()
    zero_rows = ~live[:m]
    assert not q[:m][zero_rows].any()
    np.testing.assert_array_equal(np.asarray(offset), _plane_sums(q, planes))


@pytest.mark.parametrize(
    "layout,m,k", [("2bit", 5, 1000), ("1.6bit", 13, 1000), ("1.6bit", 1, 2560)]
)
def test_int8_operands_pallas_agrees_with_the_reference(layout: str, m: int, k: int) -> None:
    """The preparation kernel the GPU path runs (interpret mode): the same scales, the same q
    but for rounding ties (it rounds x * (1 / s) with a magic number), sums of its own bytes."""
    rng = np.random.default_rng(7 * m + k)
    x = _random_x(rng, m, k)
    rows = layouts.rows_per_plane(k, layout)
    m_pad = padded_m(m)
    xb = jnp.asarray(x, jnp.bfloat16)
    got = int8_operands_pallas(xb, layout, rows, m_pad, interpret=True)
    want = int8_operands(xb, layout, rows, m_pad)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype
    scale = np.asarray(got[1], np.float64)
    np.testing.assert_allclose(scale, np.asarray(want[1], np.float64), rtol=1e-6)
    assert (scale[m:] == 1.0).all()

    lo, hi = _halves(got[0], m_pad)
    assert hi.min() >= -127 and hi.max() <= 127
    q = _unfolded(256 * hi + lo, layout)
    q_ref = _unfolded(256 * _halves(want[0], m_pad)[1] + _halves(want[0], m_pad)[0], layout)
    diff = q - q_ref
    assert np.abs(diff).max() <= 1
    assert np.count_nonzero(diff) <= 4 + diff.size // 1000, np.count_nonzero(diff)
    # where they differ, x / s is a near tie between the two
    ratio = _padded(x, layout, rows, m_pad) / scale[:, None]
    ties = np.abs(np.abs(ratio - q_ref) - 0.5)[diff != 0]
    assert (ties <= 2.0**-7).all(), ties
    assert not lo[m:].any() and not hi[m:].any()
    assert not lo[:, k:].any() and not hi[:, k:].any()
    planes = layouts.TRITS_PER_BYTE[layout]
    np.testing.assert_array_equal(np.asarray(got[2]), _plane_sums(q, planes))


# ----------------------------------------------------------------------------------------------
# Host arithmetic, device part emulated


def _emulated_int8_kernel(x, packed_t, scale, layout: str, block_k: int, split: int):
    """The s8 kernel with its device part in numpy: each plane's s8 weights (from the packed
    bytes' trits, through the layout's unpacking) times x's low and high bytes, summed over each
    split's K-range in int64 and stored as int32; host parts as shipped. Also returns x as the
    kernel quantized it (``scale q``, float64 ``[M, planes R]``)."""
    m, _ = x.shape
    n, rows = packed_t.shape
    planes = layouts.TRITS_PER_BYTE[layout]
    m_pad = padded_m(m)
    assert rows % block_k == 0 and (rows // block_k) % split == 0
    xq, xscale, offset = int8_operands(jnp.asarray(x, jnp.bfloat16), layout, rows, m_pad)
    xq = np.asarray(xq, np.int64)  # [planes, 2 m_pad, R]
    trits = layouts.unpack(np.ascontiguousarray(packed_t.T), planes * rows, layout)
    weights = _s8_weights_of_trits(trits.reshape(planes, rows, n), layout)
    per = rows // split
    partials = np.zeros((split, n, 2 * m_pad), np.int64)
    for s in range(split):
        r = slice(s * per, (s + 1) * per)
        for j in range(planes):
            partials[s] += weights[j][r].T @ xq[j][:, r].T
    assert np.abs(partials).max() < 2**31  # what the int32 accumulator holds
    out = finish_int8(jnp.asarray(partials, jnp.int32), offset, xscale, scale, m, jnp.float32)
    lo, hi = _halves(xq.astype(np.int8), m_pad)
    x_hat = _unfolded(256 * hi + lo, layout)[:m] * np.asarray(xscale, np.float64)[:m, None]
    return np.asarray(out, np.float64), x_hat


@pytest.mark.parametrize(
    "layout,m,k,n,split,scale_shape",
    [
        ("2bit", 1, 512, 128, 2, ()),
        ("2bit", 13, 2560, 256, 5, (4,)),
        ("2bit", 70, 768, 128, 1, (1,)),
        ("1.6bit", 1, 512, 128, 2, ()),
        ("1.6bit", 13, 2560, 256, 4, (4,)),
        ("1.6bit", 70, 1200, 128, 1, (1,)),
        ("1.6bit", 5, 1200, 256, 2, (256,)),
    ],
)
def test_int8_host_arithmetic_matches_float64(layout, m, k, n, split, scale_shape) -> None:
    rng = np.random.default_rng(m + k)
    trits = rng.integers(-1, 2, (k, n)).astype(np.int8)
    packed = layouts.pack(trits, layout)
    rows = packed.shape[0]
    np.testing.assert_array_equal(layouts.unpack(packed, k, layout), trits)
    x = np.asarray(jnp.asarray(rng.standard_normal((m, k)), jnp.bfloat16), np.float64)
    if m > 4:
        x[2] = 0.0
    scale = rng.uniform(0.5, 2.0, scale_shape).astype(np.float32)
    got, x_hat = _emulated_int8_kernel(x, packed.T.copy(), jnp.asarray(scale), layout, 64, split)
    gamma = np.asarray(layouts.scale_per_column(jnp.asarray(scale), n), np.float64)
    w = trits.astype(np.float64) * gamma
    want = x @ w
    assert got.shape == (m, n)
    if m > 4:
        assert not got[2].any()
    # x quantized a row: max|x_row| / 65024 an element (2-bit), / 16256 (1.6-bit), against
    # bf16's own 2**-9 |x|; for Gaussian x that is about 1.4e-4 of the product at 1.6 bits
    err = np.linalg.norm(got - want) / np.linalg.norm(want)
    assert err < {"2bit": 1e-4, "1.6bit": 4e-4}[layout], err
    # against the quantized x itself the sums are exact integers: only float32's epilogue
    planes = layouts.TRITS_PER_BYTE[layout]
    w_full = np.zeros((planes * rows, n))
    w_full[:k] = w
    exact = x_hat @ w_full
    np.testing.assert_allclose(got, exact, rtol=1e-5, atol=1e-5 * np.abs(exact).max())


# ----------------------------------------------------------------------------------------------
# Lowering and configuration


@pytest.mark.parametrize("layout", layouts.LAYOUTS)
@pytest.mark.parametrize(
    "m,cfg",
    [
        (1, MosaicConfig(64, 64, 1, 2, int8=True)),
        (16, MosaicConfig(128, 64, 2, 3, int8=True, in_flight=1)),
        (64, MosaicConfig(128, 64, 1, 3, 2, int8=True)),
        (40, MosaicConfig(128, 64, 2, 3, 2, int8=True, in_flight=1)),
        (8, MosaicConfig(128, 128, 2, 2, int8=True, in_flight=3)),
    ],
)
def test_int8_kernel_lowers_for_the_gpu(
    layout: str, m: int, cfg: MosaicConfig, lowered_mosaic
) -> None:
    """Pallas lowers the s8 kernel to a Mosaic GPU custom call on the CPU, after the Triton
    preparation kernel: with one split it writes the bf16 product ``[M, N]`` itself, else its
    int32 partials with 2 m_pad columns (low and high bytes)."""
    k = {"2bit": 2048, "1.6bit": 2560}[layout]
    n = 512
    assert layouts.rows_per_plane(k, layout) == 512
    text = lowered_mosaic(layout, m, k, n, cfg)
    assert "mosaic_gpu" in text
    assert "ternary_int8_x_" in text  # int8_operands_pallas' kernel
    if cfg.split_k == 1:
        result = f"-> tensor<{m}x{n}xbf16>"
    else:
        result = f"tensor<{cfg.split_k}x{n}x{2 * padded_m(m)}xi32>"
    calls = [line for line in text.splitlines() if "custom_call @mosaic_gpu" in line]
    assert calls and any(result in line for line in calls), (result, calls)


@pytest.mark.parametrize(
    "split,tile_wg,n,scale_shape,fused",
    [
        (1, 128, 1024, (), True),  # one gamma
        (1, 128, 1024, (8,), True),  # a gamma a tile
        (1, 128, 1024, (2,), True),  # 4 tiles a gamma
        (1, 128, 1024, (16,), True),  # 2 gammas a tile
        (1, 128, 768, (4,), False),  # blocks of 192: neither
        (2, 128, 1024, (), False),  # partial sums to add
    ],
)
def test_fused_int8_epilogue_takes_one_split_and_whole_gamma_blocks(
    split: int, tile_wg: int, n: int, scale_shape: tuple, fused: bool
) -> None:
    cfg = MosaicConfig(tile_n=tile_wg, block_k=64, split_k=split, int8=True)
    assert fused_int8_epilogue(cfg, n, scale_shape) is fused


@pytest.mark.parametrize("layout", layouts.LAYOUTS)
@pytest.mark.parametrize(
    "m,cfg,scale_shape",
    [
        (5, MosaicConfig(128, 128, 1, 2, int8=True), (16,)),  # 2 gammas a tile, ragged M
        (16, MosaicConfig(128, 64, 1, 2, 2, int8=True), (2,)),  # a gamma over 4 warpgroups
        (3, MosaicConfig(128, 64, 1, 2, int8=True), (4,)),  # N = 768: blocks of 192
    ],
)
def test_int8_kernel_lowers_with_per_block_scales(
    layout: str, m: int, cfg: MosaicConfig, scale_shape: tuple, lowered_mosaic
) -> None:
    """The fused epilogue takes per-column-block gammas (one or more a warpgroup's tile, or
    one over several); blocks that neither hold nor divide a tile take the separate one."""
    k = {"2bit": 2048, "1.6bit": 2560}[layout]
    n = 768 if scale_shape == (4,) else 512
    text = lowered_mosaic(layout, m, k, n, cfg, scale_shape)
    calls = [line for line in text.splitlines() if "custom_call @mosaic_gpu" in line]
    fused = fused_int8_epilogue(cfg, n, scale_shape)
    result = f"-> tensor<{m}x{n}xbf16>" if fused else f"tensor<1x{n}x{2 * padded_m(m)}xi32>"
    assert fused is (scale_shape != (4,))
    assert calls and any(result in line for line in calls), (result, calls)


def test_int8_kernel_rejects_block_k_32() -> None:
    x = jnp.zeros((4, 1024), jnp.bfloat16)
    w = jnp.zeros((512, 256), jnp.uint8)
    with pytest.raises(ValueError, match="int8 needs block_k 64 or 128"):
        mosaic_ternary_matmul(x, w, jnp.float32(1), "2bit", MosaicConfig(64, 32, 1, 2, int8=True))
    with pytest.raises(ValueError, match="int8 needs block_k 64 or 128"):
        mosaic_ternary_matmul(
            x, w, jnp.float32(1), "2bit", MosaicConfig(128, 32, 2, 3, 2, in_flight=1, int8=True)
        )


def test_mosaic_config_parse_round_trip() -> None:
    default = MosaicConfig.parse("128/64/2/3/1")
    assert default == MosaicConfig(128, 64, 2, 3, 1)
    assert default.in_flight == 0 and default.int8 is False
    cfg = MosaicConfig.parse("128/64/2/3/1/1/1")
    assert cfg == MosaicConfig(128, 64, 2, 3, 1, in_flight=1, int8=True)
    assert cfg.int8 is True
    assert MosaicConfig.parse("64/128/4/2/2/2") == MosaicConfig(64, 128, 4, 2, 2, in_flight=2)
    assert MosaicConfig.parse("64/128/4/2/2/0/0").int8 is False
    assert MosaicConfig.parse("128/128/1/2/1/0/1/1").x_in_kernel is True
    for c in (
        default,
        cfg,
        MosaicConfig(256, 32, 8, 4, 2, 3, True),
        MosaicConfig(x_in_kernel=True),
    ):
        fields = [getattr(c, f.name) for f in dataclasses.fields(c)]
        assert MosaicConfig.parse("/".join(str(int(v)) for v in fields)) == c


@pytest.mark.parametrize(
    "text", ["128/64", "a/b/c/d/e", "1/2/3/4/5/6/2", "1/2/3/4/5/6/1/2", "1/2/3/4/5/6/1/1/1", ""]
)
def test_mosaic_config_parse_rejects_bad_text(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        MosaicConfig.parse(text)


def test_default_tiling_takes_the_s8_kernel_up_to_m16() -> None:
    """Unmeasured points: M <= 16 takes the s8 MMA (128 columns, 128 packed rows a step where
    they divide R, 2 stages, split-K only below a tile an SM: the H200's fastest at M = 16);
    above, the bf16 one."""
    from kernels_pallas.mosaic_matmul import default_mosaic_config

    for layout, k in (("2bit", 8192), ("1.6bit", 8192), ("2bit", 3072)):
        rows = layouts.rows_per_plane(k, layout)
        cfg = default_mosaic_config(layout, 16, k, 28672)
        assert cfg.int8 and cfg.block_k in (64, 128) and rows % cfg.block_k == 0
        assert (rows // cfg.block_k) % cfg.split_k == 0 and cfg.stages == 2
        assert not default_mosaic_config(layout, 32, k, 28672).int8
    # one split once the tiles fill the SMs (the kernel then writes the product itself) ...
    assert default_mosaic_config("2bit", 4, 8192, 28672, num_sms=132).split_k == 1
    # ... else enough splits for a CTA an SM: 64 tiles of 16 steps -> 4 splits
    assert default_mosaic_config("2bit", 4, 8192, 8192, num_sms=132).split_k == 4
    # 1.6-bit K = 8000: R = 1600, a multiple of 64 but not of 128
    assert default_mosaic_config("1.6bit", 16, 8000, 28672).block_k == 64
    # R = 32 * ceil(1000 / 160) = 224: no block_k of 64 divides it, so the bf16 kernel
    assert not default_mosaic_config("1.6bit", 16, 1000, 28672).int8


X_IN_KERNEL = MosaicConfig(128, 128, 1, 2, int8=True, x_in_kernel=True)


@pytest.mark.parametrize("layout", ["2bit", "1.6bit"])
@pytest.mark.parametrize("m,scale_shape", [(1, ()), (2, (4,)), (4, ())])
def test_x_in_kernel_lowers_to_one_launch(
    layout: str, m: int, scale_shape: tuple, lowered_mosaic
) -> None:
    """``x_in_kernel``: Pallas lowers the s8 kernel that prepares x itself to one Mosaic GPU
    custom call writing the bf16 product ``[M, N]``, with no preparation kernel before it; at
    K = 8192 too, whose 1.6-bit rows (5 x 1664) run past K (zeros in x's tiles), and K = 512
    (one step, fewer than the stages; 1.6-bit's last plane has no columns of x)."""
    for k in ({"2bit": 2048, "1.6bit": 2560}[layout], 8192, 512):
        text = lowered_mosaic(layout, m, k, 512, X_IN_KERNEL, scale_shape)
        calls = [line for line in text.splitlines() if "custom_call @" in line]
        assert len(calls) == 1 and "mosaic_gpu" in calls[0], calls
        assert f"-> tensor<{m}x512xbf16>" in calls[0]
        assert "ternary_int8_x_" not in text


@pytest.mark.parametrize(
    "m,cfg,fuse,match",
    [
        (5, X_IN_KERNEL, True, "M <= 4"),
        (1, X_IN_KERNEL.replace(split_k=2), True, "one split"),
        (1, X_IN_KERNEL.replace(in_flight=1), True, "in_flight 0"),
        (1, X_IN_KERNEL.replace(compute_wgs=2), True, "one warpgroup"),
        (1, X_IN_KERNEL.replace(int8=False), True, "int8"),
        (1, X_IN_KERNEL, False, "fused"),
        (1, X_IN_KERNEL.replace(block_k=64), True, "128 packed rows a step"),
    ],
)
def test_x_in_kernel_refuses_what_it_does_not_cover(m, cfg, fuse, match) -> None:
    """Tilings and M that ``x_in_kernel`` does not take are refused with the reason, before
    any lowering."""
    from kernels_pallas.mosaic_matmul import mosaic_ternary_matmul

    k, n = 2560, 512
    rows = layouts.rows_per_plane(k, "1.6bit")
    f = jax.jit(lambda x, w: mosaic_ternary_matmul(x, w, jnp.float32(1), "1.6bit", cfg, fuse))
    with pytest.raises(ValueError, match=match):
        f.trace(
            jax.ShapeDtypeStruct((m, k), jnp.bfloat16), jax.ShapeDtypeStruct((n, rows), jnp.uint8)
        )


def _x_tiles_from_plan(x: np.ndarray, layout: str, rows: int) -> np.ndarray:
    """x's s8 tiles as ``x_in_kernel``'s prologue and store write them, thread by thread and
    register by register from :func:`x_load_plan` (logical addresses, no swizzle): ``[steps
    planes, 2 M, 128]``, -999 where nothing was written; each position written once."""
    from kernels_pallas.mosaic_matmul import FOLDED_PLANES, INT8_X_MAX, x_load_plan

    m, k = x.shape
    planes, folded = layouts.TRITS_PER_BYTE[layout], FOLDED_PLANES[layout]
    vec, shifted = x_load_plan(layout, k, rows)
    out = np.full((rows // 128 * planes, 2 * m, 128), -999, np.int64)

    def put(i, column, v):
        plane, r = column // rows, column % rows
        assert (column + len(v) - 1) // rows == plane and r // 128 == (r + len(v) - 1) // 128
        p, col = r // 128 * planes + plane, r % 128
        hi = (v + 128) >> 8
        for row, value in ((2 * i, v - (hi << 8)), (2 * i + 1, hi)):
            assert (out[p, row, col : col + len(v)] == -999).all(), "written twice"
            out[p, row, col : col + len(v)] = value

    for i in range(m):
        amax = np.abs(x[i]).max()
        scale = np.float32(amax / INT8_X_MAX[layout]) if amax > 0 else np.float32(1)
        q = np.rint(x[i] * (np.float32(1) / scale)).astype(np.int64)
        partner = q[rows : rows + shifted]  # the shifted load: column c + R at element c
        for t in range(128):
            for u in range(k // (128 * vec)):
                c = (128 * u + t) * vec
                v = q[c : c + vec].copy()
                if folded and u < shifted // (128 * vec) and c < folded * rows:
                    v -= 3 * partner[c : c + vec]
                put(i, c, v)
            for w in range((planes * rows - k) // 128):
                put(i, k + 128 * w + t, np.zeros(1, np.int64))
    return out


@pytest.mark.parametrize(
    "layout,k",
    [
        ("2bit", 512),
        ("2bit", 2560),
        ("2bit", 8192),
        ("1.6bit", 512),
        ("1.6bit", 1280),
        ("1.6bit", 3072),
        ("1.6bit", 8192),
    ],
)
def test_x_in_kernel_register_plan_writes_the_operands(layout: str, k: int) -> None:
    """The prologue's register plan (:func:`x_load_plan`: x's row in vectors, 1.6-bit's
    columns from R on in the same layout, so that a folded plane's partner is the same
    thread's register), followed thread by thread, writes every position of x's tiles once,
    and the values of :func:`int8_operands` (the two-launch path's reference): the folds, the
    planes' zeros past K, the low and high bytes."""
    from kernels_pallas.mosaic_matmul import int8_operands

    rows = layouts.rows_per_plane(k, layout)
    m = 3
    rng = np.random.default_rng(k)
    x = np.asarray(jnp.asarray(rng.standard_normal((m, k)) * 3, jnp.bfloat16), np.float32)
    x[1] = 0.0  # a zero row: scale 1
    got = _x_tiles_from_plan(x, layout, rows)
    planes = layouts.TRITS_PER_BYTE[layout]
    xq, _, _ = int8_operands(jnp.asarray(x, jnp.bfloat16), layout, rows, 8)
    want = np.asarray(xq, np.int64)  # [planes, 2 m_pad, R]: rows i low, 8 + i high
    for i in range(m):
        for half, ref_row in ((0, i), (1, 8 + i)):
            tiles = got[:, 2 * i + half].reshape(rows // 128, planes, 128)
            assert (tiles.transpose(1, 0, 2).reshape(planes, rows) == want[:, ref_row]).all()


def test_x_in_kernel_register_plan_refuses_what_it_cannot_load() -> None:
    """:func:`x_load_plan` gives no plan where R is not a multiple of 128 or where a folded
    plane's partner columns run past K, and ``x_in_kernel_ok`` follows it."""
    from kernels_pallas.mosaic_matmul import x_in_kernel_ok, x_load_plan

    assert x_load_plan("2bit", 1280, 320) is None
    assert x_load_plan("1.6bit", 512, 256) is None  # 4 R > K
    assert x_load_plan("1.6bit", 8192, 1664) == (8, 5120)
    assert x_load_plan("2bit", 8192, 2048) == (8, 0)
    assert not x_in_kernel_ok(X_IN_KERNEL, "1.6bit", 1, 2048, 512, ())  # R = 416
    assert x_in_kernel_ok(X_IN_KERNEL, "1.6bit", 1, 8192, 512, ())


def test_x_in_kernel_counts_its_shared_memory() -> None:
    """A CTA's shared memory with ``x_in_kernel``, counted by hand for the 1.6-bit 8192-wide
    layer (1664 rows a plane, 13 steps) at the shipped tiling: 2 stages of 128 x 128 weight
    bytes, the s8 tiles of 13 steps x 5 planes x 8 rows x 128, and 4 rows of 128 float32
    scales and int32 sums (x itself stays in registers), the same for every M: two CTAs an SM;
    a stage past the steps is not counted (K = 512: one step); K = 65536 does not fit a CTA
    and is refused."""
    from kernels_pallas.mosaic_matmul import SMEM_BYTES_PER_CTA, x_in_kernel_smem_bytes

    want = 2 * 128 * 128 + 13 * 5 * 8 * 128 + 2 * 4 * 128 * 4
    for m in (1, 2, 3, 4):
        assert x_in_kernel_smem_bytes(X_IN_KERNEL, "1.6bit", m, 8192) == want
    assert 2 * want <= 228 * 1024
    assert x_in_kernel_smem_bytes(X_IN_KERNEL, "1.6bit", 1, 512) == (
        128 * 128 + 5 * 8 * 128 + 2 * 4 * 128 * 4
    )
    assert x_in_kernel_smem_bytes(X_IN_KERNEL, "2bit", 4, 65536) > SMEM_BYTES_PER_CTA
    from kernels_pallas.mosaic_matmul import mosaic_ternary_matmul

    rows = layouts.rows_per_plane(65536, "2bit")
    f = jax.jit(lambda x, w: mosaic_ternary_matmul(x, w, jnp.float32(1), "2bit", X_IN_KERNEL))
    with pytest.raises(ValueError, match="bytes of shared memory"):
        f.trace(
            jax.ShapeDtypeStruct((4, 65536), jnp.bfloat16),
            jax.ShapeDtypeStruct((256, rows), jnp.uint8),
        )


def test_rules_prepare_x_in_the_kernel_up_to_m3_where_it_fits() -> None:
    """Unmeasured points up to M = 3 (``X_IN_KERNEL_RULE_MAX_M``) take ``x_in_kernel`` where
    the s8 tiling it needs is the rules' choice (one split, 128 packed rows a step): the 8192
    x 28672 layer of both layouts; not at M = 4, not with split-K (2-bit 8192 x 8192: 64 tiles
    of 16 steps, 4 splits; 28672 x 8192), not at 64 rows a step (1.6-bit K = 8000)."""
    from kernels_pallas.mosaic_matmul import X_IN_KERNEL_RULE_MAX_M, default_mosaic_config

    assert X_IN_KERNEL_RULE_MAX_M == 3
    for layout in ("2bit", "1.6bit"):
        for m in (1, 2, 3):
            assert default_mosaic_config(layout, m, 8192, 28672).x_in_kernel
            assert default_mosaic_config(layout, m, 8192, 28672).replace(x_in_kernel=False) == (
                default_mosaic_config(layout, 4, 8192, 28672)
            )
        assert not default_mosaic_config(layout, 4, 8192, 28672).x_in_kernel
    assert not default_mosaic_config("2bit", 1, 8192, 8192).x_in_kernel  # split 4
    assert not default_mosaic_config("1.6bit", 1, 8000, 28672).x_in_kernel
    # the down projection's K = 28672: 56 steps of x's tiles (224 KB) do not fit beside the
    # stages, and its 64 tiles take split-K anyway
    assert not default_mosaic_config("2bit", 1, 28672, 8192).x_in_kernel
    assert not default_mosaic_config("1.6bit", 1, 28672, 8192).x_in_kernel


STAND_IN_H200 = SimpleNamespace(
    platform="gpu",
    compute_capability="9.0",
    device_kind="NVIDIA H200",
    core_count=132,
    client=SimpleNamespace(platform_version="cuda 12.8"),
)
"""A stand-in for an H200 jax device: what the rules and ``ternary_matmul``'s dispatch read."""


def test_rules_take_x_in_kernel_on_64_columns_for_the_small_layers() -> None:
    """Where ``use_mosaic`` leaves a layer to the Triton kernels, up to M = 3 and from 3072 x
    3072 weights on, the rules take ``x_in_kernel`` on 64 columns a CTA where it fits (the
    Spectra 3.9B's layers but 1.6-bit's down projection, whose R = 1856 is no multiple of 128;
    the 1B's 2048 x 2048 is below the size); the large layers keep their own rule."""
    from kernels_pallas.mosaic_matmul import (
        X_IN_KERNEL_SMALL_TILE_N,
        preferred_mosaic_config,
        use_mosaic,
    )

    h200 = STAND_IN_H200
    small = MosaicConfig(X_IN_KERNEL_SMALL_TILE_N, 128, 1, 2, int8=True, x_in_kernel=True)
    assert X_IN_KERNEL_SMALL_TILE_N == 64
    for layout in ("2bit", "1.6bit"):
        for k, n in ((3072, 3072), (3072, 9216), (3072, 18432), (8192, 8192)):
            for m in (1, 2, 3):
                assert not use_mosaic(m, k, n)
                assert preferred_mosaic_config(layout, m, k, n, h200) == small, (layout, k, n)
            assert preferred_mosaic_config(layout, 4, k, n, h200) is None
        assert preferred_mosaic_config(layout, 1, 2048, 2048, h200) is None
        assert preferred_mosaic_config(layout, 1, 8192, 28672, h200).tile_n == 128
    assert preferred_mosaic_config("2bit", 1, 9216, 3072, h200) == small
    assert preferred_mosaic_config("1.6bit", 1, 9216, 3072, h200) is None


def test_dispatch_drops_x_in_kernel_for_gammas_its_epilogue_cannot_take(monkeypatch) -> None:
    """``ternary_matmul`` on a Hopper GPU with the transposed copy: a rule's ``x_in_kernel``
    choice goes to the Mosaic kernel as it is for a per-tensor scale, and for gamma blocks of
    192 columns (neither holding nor dividing a warpgroup's 128, so the kernel cannot write
    the product itself) without ``x_in_kernel`` where the rules take the Mosaic kernel anyway
    (``use_mosaic``), else to the Triton kernels (the small layers' rule)."""
    import kernels_pallas.matmul as dispatch

    h200 = STAND_IN_H200
    taken = []
    monkeypatch.setattr(dispatch, "_device_of", lambda x: h200)
    monkeypatch.setattr(
        dispatch, "preferred_mosaic_config", lambda layout, m, k, n, device: X_IN_KERNEL
    )
    monkeypatch.setattr(
        dispatch,
        "mosaic_ternary_matmul",
        lambda x, packed_t, scale, layout, cfg: taken.append(cfg) or x[:, :1],
    )
    k, n = 2048, 768
    rows = layouts.rows_per_plane(k, "2bit")
    x = jnp.ones((1, k), jnp.bfloat16)
    packed, packed_t = jnp.zeros((rows, n), jnp.uint8), jnp.zeros((n, rows), jnp.uint8)
    monkeypatch.setattr(
        dispatch,
        "ternary_matmul_pallas",
        lambda x, packed, scale, layout, config, interpret: taken.append("triton") or x[:, :1],
    )
    gammas = jnp.ones((4,), jnp.float32)
    for large in (True, False):
        monkeypatch.setattr(dispatch, "use_mosaic", lambda m, k, n, large=large: large)
        dispatch.ternary_matmul(x, packed, jnp.float32(1), "2bit", packed_t=packed_t)
        dispatch.ternary_matmul(x, packed, gammas, "2bit", packed_t=packed_t)
    assert taken == [X_IN_KERNEL, X_IN_KERNEL.replace(x_in_kernel=False), X_IN_KERNEL, "triton"]
