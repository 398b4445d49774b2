"""ternary_matmul: the Pallas kernel (interpret mode) and the reference against float64 numpy."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from kernels_pallas import (
    BlockConfig,
    default_config,
    layouts,
    pack,
    ternary_matmul,
    ternary_matmul_pallas,
    ternary_matmul_reference,
)


def _problem(m: int, k: int, n: int, layout: str, seed: int, groups: int = 1):
    rng = np.random.default_rng(seed)
    trits = rng.integers(-1, 2, (k, n)).astype(np.int8)
    x = jnp.asarray(rng.standard_normal((m, k)), jnp.bfloat16)
    if groups == 1:
        scale = np.float32(rng.uniform(0.1, 2.0))
        col_scale = np.full(n, scale, np.float64)
    else:
        scale = rng.uniform(0.1, 2.0, groups).astype(np.float32)
        col_scale = np.repeat(scale.astype(np.float64), n // groups)
    want = np.asarray(x, np.float64) @ (trits.astype(np.float64) * col_scale[None, :])
    return x, jnp.asarray(pack(trits, layout)), jnp.asarray(scale), want


def _positive_activation_errors(layout: str, m: int, cfg: BlockConfig, seed: int):
    """Relative errors against float64 of the kernel (``cfg``, interpret mode) and of the bf16
    reference, for all-positive x (K = 4096, N = 256, gamma 1)."""
    rng = np.random.default_rng(seed)
    k, n = 4096, 256
    trits = rng.integers(-1, 2, (k, n)).astype(np.int8)
    x = jnp.asarray(rng.uniform(0.0, 1.0, (m, k)), jnp.bfloat16)
    want = np.asarray(x, np.float64) @ trits.astype(np.float64)
    packed = jnp.asarray(pack(trits, layout))
    got = ternary_matmul_pallas(x, packed, jnp.float32(1.0), layout, cfg, interpret=True)
    ref = ternary_matmul_reference(x, packed, jnp.float32(1.0), layout)
    return _rel_err(got, want), _rel_err(ref, want)


def _rel_err(got, want: np.ndarray) -> float:
    got = np.asarray(got, np.float64)
    assert np.all(np.isfinite(got))
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


@pytest.mark.parametrize("layout", ["2bit", "1.6bit"])
@pytest.mark.parametrize(("m", "k", "n"), [(1, 256, 256), (5, 512, 256), (16, 256, 512)])
def test_kernel_interpret_matches_float64(layout: str, m: int, k: int, n: int) -> None:
    x, packed, scale, want = _problem(m, k, n, layout, seed=m + k + n)
    got = ternary_matmul(x, packed, scale, layout, interpret=True)
    assert got.shape == (m, n) and got.dtype == jnp.bfloat16
    assert _rel_err(got, want) < 1e-2


@pytest.mark.parametrize("layout", ["2bit", "1.6bit"])
@pytest.mark.parametrize(
    "cfg",
    [
        BlockConfig(block_m=16, block_n=128, block_k=32, split_k=3, decode="jnp"),
        BlockConfig(block_m=16, block_n=256, block_k=32, split_k=1, weights_left=True),
        BlockConfig(block_m=32, block_n=128, block_k=32, split_k=2, weights_left=True),
    ],
)
def test_kernel_variants_ragged_m_split_k_column_scales(layout: str, cfg: BlockConfig) -> None:
    """Ragged M (masked rows), split-K partial sums, both MMA orientations, per-block gamma."""
    x, packed, scale, want = _problem(37, 512, 512, layout, seed=cfg.split_k, groups=4)
    got = ternary_matmul_pallas(x, packed, scale, layout, cfg, interpret=True)
    assert got.shape == (37, 512)
    assert _rel_err(got, want) < 1e-2


@pytest.mark.parametrize("layout", ["2bit", "1.6bit"])
@pytest.mark.parametrize(
    ("m", "k", "cfg"),
    [
        (37, 512, BlockConfig(block_m=16, block_n=128, block_k=32, split_k=3, raw_codes=True)),
        (64, 768, BlockConfig(block_m=64, block_n=256, block_k=32, split_k=1, raw_codes=True)),
    ],
)
def test_raw_code_kernel_matches_float64(layout: str, m: int, k: int, cfg: BlockConfig) -> None:
    """The MMA kernel on raw magic codes (x pre-scaled per plane, the trits' offset added to the
    partial sums outside): ragged M, split-K and a single program's partials, per-block gammas,
    K = 768 with 1.6-bit padding rows (the pre-scaled x is zero there)."""
    x, packed, scale, want = _problem(m, k, 512, layout, seed=m + k, groups=4)
    got = ternary_matmul_pallas(x, packed, scale, layout, cfg, interpret=True)
    assert got.shape == (m, 512) and got.dtype == jnp.bfloat16
    assert _rel_err(got, want) < 1e-2


@pytest.mark.parametrize("layout", ["2bit", "1.6bit"])
def test_raw_code_offset_keeps_precision_for_positive_activations(layout: str) -> None:
    """All-positive x: the raw codes carry an offset of up to 129 times the signal per term,
    which float32 sums must cancel against the separately summed offset; the result stays
    within 2x of the bf16 reference's own error."""
    cfg = BlockConfig(block_m=16, block_n=128, block_k=64, split_k=2, raw_codes=True)
    kernel_err, reference_err = _positive_activation_errors(layout, 16, cfg, seed=8)
    assert kernel_err < 2 * reference_err


def test_raw_codes_need_the_mma_kernel_with_weights_right() -> None:
    x, packed, _, _ = _problem(16, 256, 256, "2bit", seed=0)
    cfg = BlockConfig(block_m=16, block_n=128, block_k=32, weights_left=True, raw_codes=True)
    with pytest.raises(ValueError, match="raw_codes"):
        ternary_matmul_pallas(x, packed, jnp.float32(1), "2bit", cfg, interpret=True)


@pytest.mark.parametrize("layout", ["2bit", "1.6bit"])
@pytest.mark.parametrize(
    ("m", "k", "cfg"),
    [
        (1, 512, BlockConfig(block_n=256, block_k=8, split_k=5, gemv=True)),
        (3, 768, BlockConfig(block_n=128, block_k=16, split_k=1, gemv=True, num_warps=2)),
        (8, 1024, BlockConfig(block_n=512, block_k=32, split_k=2, gemv=True)),
        (11, 512, BlockConfig(block_n=256, block_k=16, split_k=2, gemv=True)),  # M > 8: MMA
    ],
)
def test_cuda_core_kernel_matches_float64(layout: str, m: int, k: int, cfg: BlockConfig) -> None:
    """The small-M kernel (magic floats, column-independent offset subtracted at the end): one
    gamma or per-block gammas, split-K, K with 1.6-bit padding rows (768, 1024)."""
    x, packed, scale, want = _problem(m, k, 512, layout, seed=m + k, groups=1 + (m % 2) * 3)
    got = ternary_matmul_pallas(x, packed, scale, layout, cfg, interpret=True)
    assert got.shape == (m, 512) and got.dtype == jnp.bfloat16
    assert _rel_err(got, want) < 1e-2


@pytest.mark.parametrize("layout", ["2bit", "1.6bit"])
def test_cuda_core_kernel_offset_keeps_precision_for_positive_activations(layout: str) -> None:
    """All-positive x: the column-independent offset (up to 128x the signal per term) then grows
    linearly with K while the result grows like sqrt(K); float32 accumulation must still land
    within 2x of the bf16 reference's own error (measured: 2.1e-3 vs 1.7e-3 at K = 8192)."""
    cfg = BlockConfig(block_n=256, block_k=32, split_k=1, gemv=True)
    kernel_err, reference_err = _positive_activation_errors(layout, 1, cfg, seed=7)
    assert kernel_err < 2 * reference_err


@pytest.mark.parametrize("layout", ["2bit", "1.6bit"])
@pytest.mark.parametrize(
    ("m", "k", "cfg"),
    [
        (1, 512, BlockConfig(block_n=256, block_k=32, split_k=2, gemv=True, x_int16=True)),
        (1, 1024, BlockConfig(block_n=512, block_k=16, split_k=3, gemv=True, x_int16=True)),
        (3, 768, BlockConfig(block_n=128, block_k=8, split_k=1, gemv=True, x_int16=True)),
        (8, 512, BlockConfig(block_n=256, block_k=32, split_k=1, gemv=True, x_int16=True)),
    ],
)
def test_integer_kernel_matches_float64(layout: str, m: int, k: int, cfg: BlockConfig) -> None:
    """The dp2a kernel (x quantized to int16 per program and row): split-K (each split its own
    x scale), per-block gammas, 1.6-bit K padding (768, 1024), an outlier in x; as close to the
    float64 result as the bf16 reference (x rounded to int8 would fail this)."""
    x, packed, scale, want = _problem(m, k, 512, layout, seed=k + m, groups=1 + (m % 2) * 3)
    x = x.at[0, 3].set(60.0)  # 20 sigma: sets the scale of its row's first split
    want = np.asarray(x, np.float64) @ (
        layouts.unpack(np.asarray(packed), k, layout).astype(np.float64)
        * np.asarray(layouts.scale_per_column(scale, 512))[None, :]
    )
    got = ternary_matmul_pallas(x, packed, scale, layout, cfg, interpret=True)
    ref = ternary_matmul_reference(x, packed, scale, layout)
    assert got.shape == (m, 512) and got.dtype == jnp.bfloat16
    assert _rel_err(got, want) < 1.2 * _rel_err(ref, want)


@pytest.mark.parametrize("layout", ["2bit", "1.6bit"])
def test_integer_kernel_positive_and_zero_activations(layout: str) -> None:
    """All-positive x (the codes' offset is then largest) and an all-zero row (no scale)."""
    rng = np.random.default_rng(11)
    k, n = 2048, 256
    trits = rng.integers(-1, 2, (k, n)).astype(np.int8)
    x = np.abs(rng.standard_normal((2, k)))
    x[1] = 0.0
    xb = jnp.asarray(x, jnp.bfloat16)
    packed = jnp.asarray(pack(trits, layout))
    cfg = BlockConfig(block_n=256, block_k=32, split_k=4, gemv=True, x_int16=True)
    got = np.asarray(ternary_matmul_pallas(xb, packed, jnp.float32(1.0), layout, cfg, True))
    want = np.asarray(xb, np.float64) @ trits.astype(np.float64)
    ref = np.asarray(ternary_matmul_reference(xb, packed, jnp.float32(1.0), layout))
    assert _rel_err(got[:1], want[:1]) < 1.2 * _rel_err(ref[:1], want[:1])
    np.testing.assert_array_equal(got[1], 0.0)


def test_integer_kernel_needs_the_cuda_core_path() -> None:
    cfg = BlockConfig(block_n=256, block_k=32, gemv=False, x_int16=True)
    x, packed = jnp.zeros((1, 256), jnp.bfloat16), jnp.zeros((64, 256), jnp.uint8)
    with pytest.raises(ValueError, match="x_int16 needs gemv=True"):
        ternary_matmul_pallas(x, packed, jnp.float32(1), "2bit", cfg, interpret=True)


@pytest.mark.parametrize("layout", ["2bit", "1.6bit"])
def test_reference_and_cpu_dispatch(layout: str) -> None:
    x, packed, scale, want = _problem(3, 320, 24, layout, seed=3, groups=3)  # any K, N it packs
    ref = ternary_matmul_reference(x, packed, scale, layout)
    assert _rel_err(ref, want) < 1e-2
    np.testing.assert_array_equal(np.asarray(ternary_matmul(x, packed, scale, layout)), ref)


def test_default_config_fits_shapes() -> None:
    for layout in ("2bit", "1.6bit"):
        shapes = [(1, 2048, 2048), (1, 8192, 28672), (64, 8192, 28672), (256, 3072, 8192)]
        shapes += [(16, 8192, 28672), (4, 8192, 8192)]
        for m, k, n in [*shapes, (5, 256, 256)]:
            cfg = default_config(layout, m, k, n)
            rows = pack(np.zeros((k, 1), np.int8), layout).shape[0]
            assert n % cfg.block_n == 0 and rows % cfg.block_k == 0 and cfg.split_k >= 1
            assert cfg.gemv == (m == 1)  # the CUDA-core kernel at M = 1 (docs/benchmarks.md)
            assert cfg.x_int16 == (m == 1 and k * n >= 1 << 27)  # integer for the largest
            assert cfg.raw_codes == (1 < m <= 16 and k * n >= 1 << 27)  # raw MMA codes there


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (((4, 300), (75, 256), "2bit"), r"multiples of 256 \(got K=300, N=256\)"),
        (((4, 256), (64, 200), "2bit"), r"multiples of 256 \(got K=256, N=200\)"),
        (((4, 256), (32, 256), "2bit"), r"packed shape \(32, 256\) does not fit x of shape"),
        (((4, 256), (51, 256), "1.6bit"), r"expected \(64, 256\)"),
        (((4, 256, 1), (64, 256), "2bit"), r"x must be 2-D"),
    ],
)
def test_kernel_shape_errors(args, message: str) -> None:
    x_shape, p_shape, layout = args
    x = jnp.zeros(x_shape, jnp.bfloat16)
    packed = jnp.zeros(p_shape, jnp.uint8)
    with pytest.raises(ValueError, match=message):
        ternary_matmul(x, packed, jnp.float32(1), layout, interpret=True)


def test_kernel_rejects_bad_dtype_config_and_scale() -> None:
    packed = jnp.zeros((64, 256), jnp.uint8)
    with pytest.raises(ValueError, match="x must be bfloat16"):
        ternary_matmul_pallas(
            jnp.zeros((2, 256), jnp.float32), packed, jnp.float32(1), interpret=True
        )
    x = jnp.zeros((2, 256), jnp.bfloat16)
    with pytest.raises(ValueError, match="block_k=48: must be a power of two"):
        ternary_matmul_pallas(
            x, packed, jnp.float32(1), config=BlockConfig(block_k=48), interpret=True
        )
    with pytest.raises(ValueError, match=r"scale of shape \(3,\) does not fit N=256"):
        ternary_matmul_pallas(x, packed, jnp.ones(3), interpret=True)
