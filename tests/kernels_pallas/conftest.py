"""Fixtures shared by the kernel tests."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from kernels_pallas import layouts


@pytest.fixture
def lowered_mosaic():
    """``lower(layout, m, k, n, cfg, scale_shape=())``: the text of ``mosaic_ternary_matmul``
    for ``[M, K] x [K, N]`` lowered for the GPU on the CPU (no GPU needed)."""
    from kernels_pallas.mosaic_matmul import mosaic_ternary_matmul

    def lower(layout: str, m: int, k: int, n: int, cfg, scale_shape: tuple = ()) -> str:
        rows = layouts.rows_per_plane(k, layout)
        f = jax.jit(lambda x, w, s: mosaic_ternary_matmul(x, w, s, layout, cfg))
        args = (
            jax.ShapeDtypeStruct((m, k), jnp.bfloat16),
            jax.ShapeDtypeStruct((n, rows), jnp.uint8),
            jax.ShapeDtypeStruct(scale_shape, jnp.float32),
        )
        return f.trace(*args).lower(lowering_platforms=("cuda",)).as_text()

    return lower
