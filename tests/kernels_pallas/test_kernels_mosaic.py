"""The Mosaic GPU kernel (kernels_pallas/mosaic_matmul.py) on the CPU.

Its register-A ``wgmma`` cannot run here (jax's Mosaic interpreter has none), so this checks
what can be checked without a GPU, each against an independent reference:

- the K order the kernel relies on, against Mosaic's own definitions of its 8-bit and 16-bit
  WGMMA register layouts (element -> warp, lane, register, vector slot, rebuilt with numpy);
- the host-side arithmetic (x's scaling, K order and padding; the epilogue's split-K sum,
  transpose, offset and per-column scale), with the device part emulated in numpy, against the
  float64 ``x @ (scale * T)``;
- that the kernel lowers (Pallas -> Mosaic GPU) for both layouts and both pipeline kinds;
- the tiling rules. The decode PTX itself is run through the emulator in
  test_kernels_ptx_decode.py.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest

from kernels_pallas import layouts
from kernels_pallas.mosaic_matmul import (
    MIN_STEPS_PER_SPLIT,
    MosaicConfig,
    bf16_register_of,
    default_mosaic_config,
    finish,
    fragment_k_order,
    mosaic_operands,
    mosaic_ternary_matmul,
    padded_m,
    use_mosaic,
)
from kernels_pallas.triton_matmul import plane_affine


def _tiled_elements(layout, shape: tuple[int, int]) -> np.ndarray:
    """The array's flat element indices arranged as ``layout.tiling`` tiles them (each tile
    splits the trailing dims into [outer..., inner...], as ``Tiling.tile_shape``)."""
    tiled = np.arange(math.prod(shape)).reshape(shape)
    for tile in layout.tiling.tiles:
        r, lead = len(tile), tiled.shape[: -len(tile)]
        split = [v for d, t in zip(tiled.shape[-r:], tile, strict=True) for v in (d // t, t)]
        tiled = tiled.reshape(*lead, *split)
        nl = len(lead)
        tiled = tiled.transpose(
            [*range(nl), *(nl + 2 * i for i in range(r)), *(nl + 2 * i + 1 for i in range(r))]
        )
    assert tiled.shape == layout.tiling.tile_shape(shape)
    return tiled


def _owners(layout, shape: tuple[int, int]) -> dict[tuple, int]:
    """``(warp, lane, register index, vector slot) -> flat element`` of a TiledLayout."""
    tiled = _tiled_elements(layout, shape)
    nd = tiled.ndim

    def linear(index, dims):
        value = 0
        for d in dims:
            value = value * tiled.shape[d] + index[d]
        return value

    special = {d % nd for d in (*layout.warp_dims, *layout.lane_dims, layout.vector_dim)}
    owners = {}
    for index in np.ndindex(tiled.shape):
        register = tuple(0 if d in special else i for d, i in enumerate(index))
        key = (
            linear(index, layout.warp_dims),
            linear(index, layout.lane_dims),
            register,
            index[layout.vector_dim],
        )
        owners[key] = int(tiled[index])
    return owners


@pytest.mark.parametrize("block_k", [32, 64, 128])
def test_decoded_registers_sit_at_the_fragment_k_order(block_k: int) -> None:
    """Each byte the kernel decodes lands, unmoved, where the 16-bit WGMMA layout puts the K
    position whose x column :func:`fragment_k_order` assigns to that byte's column."""
    fa = pytest.importorskip("jax.experimental.mosaic.gpu.fragmented_array")
    shape = (128, block_k)
    bytes_at = _owners(fa.WGMMA_LAYOUT_8BIT, shape)
    bf16_at = _owners(fa.WGMMA_LAYOUT, shape)
    order = fragment_k_order(block_k)
    assert len(bytes_at) == len(bf16_at) == math.prod(shape)
    for (warp, lane, register, slot), element in bytes_at.items():
        row, col = divmod(element, block_k)
        dst = bf16_at[(warp, lane, bf16_register_of(register, slot // 2), slot % 2)]
        dst_row, position = divmod(dst, block_k)
        assert dst_row == row
        assert order[position] == col


def test_fragment_k_order_is_a_permutation_within_groups_of_16() -> None:
    order = fragment_k_order(64)
    assert sorted(order) == list(range(64))
    assert (order // 16 == np.arange(64) // 16).all()
    with pytest.raises(ValueError, match="multiple of 16"):
        fragment_k_order(40)


def _emulated_kernel(x, packed_t, scale, layout: str, cfg: MosaicConfig) -> np.ndarray:
    """The kernel with its device part in numpy: raw codes per plane (from the trits, through
    the affine map), the MMA at fragment K positions, split-K partials; host parts as shipped."""
    m, _ = x.shape
    n, rows = packed_t.shape
    planes = layouts.TRITS_PER_BYTE[layout]
    m_pad = padded_m(m)
    xk, offset = mosaic_operands(jnp.asarray(x), layout, rows, m_pad)
    xk = np.asarray(xk, np.float64)  # [planes, m_pad, R]
    a, b = plane_affine(layout)
    trits = layouts.unpack(packed_t.T, planes * rows, layout).reshape(planes, rows, n)
    codes = (trits - b[:, None, None]) / a[:, None, None]  # v with t = a v + b
    order = fragment_k_order(rows)
    steps = rows // cfg.block_k
    per = steps // cfg.split_k
    partials = np.zeros((cfg.split_k, n, m_pad))
    for s in range(cfg.split_k):
        r = slice(s * per * cfg.block_k, (s + 1) * per * cfg.block_k)
        for j in range(planes):
            a_tile = codes[j][order][r].T  # [N, k]: the register operand's columns, in order
            partials[s] += a_tile @ xk[j][:, r].T
    return np.asarray(finish(jnp.asarray(partials, jnp.float32), offset, scale, m, jnp.float32))


@pytest.mark.parametrize("layout", layouts.LAYOUTS)
@pytest.mark.parametrize(
    "m,k,n,split,scale_shape",
    [(1, 512, 128, 2, ()), (13, 2048, 256, 4, (4,)), (70, 768, 128, 1, (1,))],
)
def test_host_arithmetic_matches_float64(layout, m, k, n, split, scale_shape) -> None:
    rng = np.random.default_rng(m)
    trits = rng.integers(-1, 2, (k, n)).astype(np.int8)
    packed = layouts.pack(trits, layout)
    x = np.asarray(jnp.asarray(rng.standard_normal((m, k)), jnp.bfloat16), np.float64)
    scale = rng.uniform(0.5, 2.0, scale_shape).astype(np.float32)
    rows = packed.shape[0]
    split = math.gcd(split, rows // 32)  # 1.6-bit's R = 32 * ceil(K / 160): 7 steps at K = 1024
    cfg = MosaicConfig(64, 32, split, 2)
    got = _emulated_kernel(x, packed.T.copy(), jnp.asarray(scale), layout, cfg)
    gamma = np.asarray(layouts.scale_per_column(jnp.asarray(scale), n), np.float64)
    want = x @ (trits.astype(np.float64) * gamma)
    err = np.linalg.norm(got - want) / np.linalg.norm(want)
    # float32 sums of exact bf16 products, no bf16 output rounding; the raw codes' offset
    # cancels about 7 of float32's 24 bits (raw_code_operands)
    assert err < 1e-4


@pytest.mark.parametrize("layout", layouts.LAYOUTS)
@pytest.mark.parametrize(
    "m,cfg",
    [
        (1, MosaicConfig(64, 32, 2, 2)),
        (100, MosaicConfig(128, 64, 1, 2)),
        (16, MosaicConfig(256, 32, 2, 2, 2)),
        (64, MosaicConfig(128, 64, 1, 3, in_flight=1)),
        (16, MosaicConfig(256, 32, 2, 2, 2, in_flight=2)),
        (40, MosaicConfig(128, 64, 1, 3, 2, in_flight=1)),
    ],
)
def test_kernel_lowers_for_the_gpu(layout: str, m: int, cfg: MosaicConfig, lowered_mosaic) -> None:
    """Pallas lowers it to a Mosaic GPU custom call on the CPU (no GPU needed): the Python side
    of the kernel (pipeline, layouts, inline PTX, wgmma operand shapes) is well formed."""
    k, n = 1024, 512
    rows = layouts.rows_per_plane(k, layout)
    if rows % cfg.block_k:
        cfg = cfg.replace(block_k=32)
    if (rows // cfg.block_k) % cfg.split_k:
        cfg = cfg.replace(split_k=1)
    assert "mosaic_gpu" in lowered_mosaic(layout, m, k, n, cfg)


def test_kernel_rejects_what_it_cannot_tile() -> None:
    x = jnp.zeros((4, 1024), jnp.bfloat16)
    w = jnp.zeros((512, 256), jnp.uint8)
    with pytest.raises(ValueError, match="split_k must divide"):
        mosaic_ternary_matmul(x, w, jnp.float32(1), "2bit", MosaicConfig(64, 64, 3, 2))
    with pytest.raises(ValueError, match="tile_n must divide"):
        mosaic_ternary_matmul(x, w, jnp.float32(1), "2bit", MosaicConfig(192, 64, 1, 2))
    with pytest.raises(ValueError, match="does not fit"):
        mosaic_ternary_matmul(x, w.T, jnp.float32(1), "2bit", MosaicConfig())
    with pytest.raises(ValueError, match="bfloat16"):
        mosaic_ternary_matmul(x.astype(jnp.float32), w, 1.0, "2bit", MosaicConfig(64, 64, 1, 2))
    with pytest.raises(ValueError, match="in_flight must be in"):
        mosaic_ternary_matmul(x, w, 1.0, "2bit", MosaicConfig(64, 64, 1, 2, in_flight=4))
    with pytest.raises(ValueError, match="needs stages >= 2"):
        mosaic_ternary_matmul(x, w, 1.0, "2bit", MosaicConfig(64, 64, 1, 1, in_flight=1))
    with pytest.raises(ValueError, match="M=300"):
        mosaic_ternary_matmul(
            jnp.zeros((300, 1024), jnp.bfloat16), w, 1.0, "2bit", MosaicConfig(64, 64, 1, 2)
        )


@pytest.mark.parametrize("layout", layouts.LAYOUTS)
@pytest.mark.parametrize(
    "k,n", [(8192, 28672), (8192, 8192), (3072, 3072), (3072, 18432), (9216, 3072), (2048, 256)]
)
def test_default_config_tiles_every_shape(layout: str, k: int, n: int) -> None:
    cfg = default_mosaic_config(layout, 64, k, n)
    rows = layouts.rows_per_plane(k, layout)
    steps = rows // cfg.block_k
    assert n % cfg.tile_n == 0 and rows % cfg.block_k == 0 and steps % cfg.split_k == 0
    assert steps // cfg.split_k >= min(MIN_STEPS_PER_SPLIT, steps)


def test_use_mosaic_ranges() -> None:
    """The rules for points no table covers: M = 17 to 128 on layers of N >= 8192 and 3 << 24
    weights, and M = 1 to 16 from 2**27 weights."""
    assert not use_mosaic(16, 3072, 9216)
    assert use_mosaic(16, 8192, 28672) and use_mosaic(9, 8192, 28672)
    assert use_mosaic(1, 8192, 28672) and use_mosaic(4, 8192, 28672)
    assert not use_mosaic(1, 8192, 8192)  # 2**26 weights: the CUDA-core and Triton kernels
    assert use_mosaic(128, 8192, 8192) and use_mosaic(17, 3072, 18432)
    # below 3 << 24 weights the Mosaic call's ~20 us floor loses (2048 x 8192 at M = 64)
    assert not use_mosaic(17, 3072, 9216) and not use_mosaic(64, 2048, 8192)
    assert not use_mosaic(64, 2048, 16384)
    assert not use_mosaic(64, 9216, 3072)
    assert not use_mosaic(129, 8192, 28672)


def test_preferred_config_follows_the_shipped_h200_table() -> None:
    """On an H200 the shipped table decides for the points it measured (the Mosaic kernel at
    M = 64 on 8192 x 28672, the Triton kernels on 3072 x 3072), the rules elsewhere (below the
    table's smallest Mosaic M, 16: M = 1 takes the s8 kernel with one split on 8192 x 28672,
    and x in the kernel on 64 columns on 3072 x 3072)."""
    from kernels_pallas.mosaic_matmul import preferred_mosaic_config, small_layer_mosaic_config

    class H200:
        device_kind = "NVIDIA H200"
        platform = "gpu"
        core_count = 132

    assert preferred_mosaic_config("2bit", 64, 8192, 28672, H200()) is not None
    assert preferred_mosaic_config("2bit", 64, 3072, 3072, H200()) is None
    m1 = preferred_mosaic_config("2bit", 1, 8192, 28672, H200())
    assert m1 == default_mosaic_config("2bit", 1, 8192, 28672) and m1.int8 and m1.split_k == 1
    assert preferred_mosaic_config("2bit", 1, 3072, 3072, H200()) == small_layer_mosaic_config(
        "2bit", 1, 3072, 3072
    )
    assert preferred_mosaic_config("2bit", 4, 3072, 3072, H200()) is None
    assert preferred_mosaic_config("2bit", 48, 4096, 16384, H200()) == default_mosaic_config(
        "2bit", 48, 4096, 16384
    )


@pytest.mark.parametrize("layout", layouts.LAYOUTS)
def test_operands_are_x_scaled_at_the_fragment_k_order(layout: str) -> None:
    """mosaic_operands' reshape-and-transpose permutation equals indexing with
    fragment_k_order (planes leading), its scaling raw_code_operands', and its offset the
    float64 sum."""
    from kernels_pallas.triton_matmul import raw_code_operands

    m, k = 5, 1024
    rows = layouts.rows_per_plane(k, layout)
    x = jnp.asarray(np.random.default_rng(3).standard_normal((m, k)), jnp.bfloat16)
    xk, offset = mosaic_operands(x, layout, rows, 8)
    x_scaled, _ = raw_code_operands(x, layout, rows)
    want = np.zeros((8, x_scaled.shape[1]), np.float32)
    want[:m] = np.asarray(x_scaled, np.float32)[:, fragment_k_order(x_scaled.shape[1])]
    want = want.reshape(8, -1, rows).transpose(1, 0, 2)  # [planes, m_pad, R]
    np.testing.assert_array_equal(np.asarray(xk, np.float32), want)
    _, b = plane_affine(layout)
    xp = np.zeros((m, layouts.TRITS_PER_BYTE[layout] * rows))
    xp[:, :k] = np.asarray(x, np.float64)
    want_offset = xp.reshape(m, -1, rows).sum(axis=2) @ b
    np.testing.assert_allclose(np.asarray(offset, np.float64), want_offset, rtol=1e-5, atol=1e-3)
