"""x's preparation for the s8 Mosaic kernel (``MosaicConfig(int8=True)``) in one launch.

:func:`kernels_pallas.mosaic_matmul.int8_operands` says what it computes (x quantized to int16
a row, the 1.6-bit layout's first planes folded, split into two signed bytes, laid out
``[planes, 2 m_pad, R]``, with the scale a row and the sums of its quantized values a plane).
Written with jnp, XLA ran it as four kernels (the largest ``|x|``, the rounding, the sums, the
layout); at M = 16 on the H200, under Nsight Compute, they took 18.9 us around a 38-44 us matmul.
This Pallas (Triton lowering) kernel does it in one: a program a padded row and plane, which
reads the whole row (for its largest value) and writes its plane's rows and sum. (A first
version, a program a row over all planes, took 7.6-10 us under ncu at M = 16: 16 programs, each
waiting on its loads in turn.)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from kernels_pallas import layouts
from kernels_pallas.mosaic_matmul import FOLDED_PLANES, INT8_X_MAX
from kernels_pallas.triton_dp2a import rounded_int


def _next_pow2(v: int) -> int:
    return 1 << max(0, (v - 1).bit_length())


def _kernel(x_ref, q_ref, s_ref, o_ref, *, layout: str, m: int, k: int, rows: int, m_pad: int):
    """Padded row i, plane j: x's row ``min(i, M - 1)`` (zeros from row M on) -> rows i (low
    bytes) and ``m_pad + i`` (high bytes) of plane j, the row's scale (plane 0 writes it) and
    the plane's sum of q. Every program reads the whole row for the largest ``|x|``, all its
    loads at once (one trip to memory), and keeps its own plane's values (and the next plane's,
    for a folded plane: ``q_j - 3 q_(j+1)``, ``mosaic_matmul.FOLDED_PLANES``). ``x_ref`` and
    ``q_ref`` are flat, so that every start is dynamic and the blocks (powers of two, masked at
    R) may run past a row's end."""
    i, j = pl.program_id(0), pl.program_id(1)
    planes, folded = layouts.TRITS_PER_BYTE[layout], FOLDED_PLANES[layout]
    live = i < m
    src = jnp.minimum(i, m - 1) * k
    block = _next_pow2(rows)
    offs = lax.broadcasted_iota(jnp.int32, (block,), 0)
    amax = jnp.float32(0.0)
    mine = jnp.zeros((block,), jnp.float32)
    nxt = jnp.zeros((block,), jnp.float32)  # plane j + 1's, for j < folded; else zeros
    for p in range(planes):
        mask = (offs < rows) & (p * rows + offs < k) & live
        xp = plgpu.load(x_ref.at[pl.ds(src + p * rows, block)], mask=mask, other=0.0)
        xp = xp.astype(jnp.float32)
        amax = jnp.maximum(amax, jnp.max(jnp.abs(xp)))
        mine = jnp.where(j == p, xp, mine)
        if 1 <= p <= folded:
            nxt = jnp.where(j + 1 == p, xp, nxt)
    scale = jnp.where(amax > 0, amax / INT8_X_MAX[layout], 1.0)
    inv = 1.0 / scale
    q = rounded_int(mine * inv)
    v = q - 3 * rounded_int(nxt * inv) if folded else q
    hi = (v + 128) >> 8
    lo = v - (hi << 8)
    store = offs < rows
    base = (j * 2 * m_pad + i) * rows
    plgpu.store(q_ref.at[pl.ds(base, block)], lo.astype(jnp.int8), mask=store)
    plgpu.store(q_ref.at[pl.ds(base + m_pad * rows, block)], hi.astype(jnp.int8), mask=store)
    o_ref[pl.ds(j * m_pad + i, 1)] = jnp.full((1,), jnp.sum(q), jnp.int32)

    @pl.when(j == 0)
    def _():
        s_ref[pl.ds(i, 1)] = jnp.full((1,), scale, jnp.float32)


@functools.partial(jax.jit, static_argnames=("layout", "rows", "m_pad", "interpret"))
def int8_operands_pallas(
    x: jax.Array, layout: str, rows: int, m_pad: int, interpret: bool = False
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """As :func:`kernels_pallas.mosaic_matmul.int8_operands` (``[planes, 2 m_pad, R]`` int8,
    the scale ``[m_pad]`` float32 (1 on the padding rows), the offset ``[planes, m_pad]``
    int32), in one Pallas launch of ``m_pad x planes`` programs."""
    m, k = x.shape
    planes = layouts.TRITS_PER_BYTE[layout]
    if not 1 <= m <= m_pad or planes * rows < k:
        raise ValueError(
            f"int8_operands_pallas: x {x.shape} does not fit m_pad={m_pad}, R={rows} in the "
            f"{layout} layout"
        )
    block = _next_pow2(rows)
    kernel = functools.partial(_kernel, layout=layout, m=m, k=k, rows=rows, m_pad=m_pad)
    q, scale, offset = pl.pallas_call(
        kernel,
        out_shape=(
            jax.ShapeDtypeStruct((planes * 2 * m_pad * rows,), jnp.int8),
            jax.ShapeDtypeStruct((m_pad,), jnp.float32),
            jax.ShapeDtypeStruct((planes * m_pad,), jnp.int32),
        ),
        grid=(m_pad, planes),
        name=f"ternary_int8_x_{layout.replace('.', 'p')}",
        compiler_params=plgpu.CompilerParams(num_warps=max(1, min(8, block // 512))),
        interpret=interpret,
    )(x.reshape(-1))
    return q.reshape(planes, 2 * m_pad, rows), scale, offset.reshape(planes, m_pad)
