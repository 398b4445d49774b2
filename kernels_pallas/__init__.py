"""Pallas kernels for packed-ternary matrix multiplication (2-bit and 1.6-bit layouts).

Depends on jax and numpy only, so that the exporter and the GPU benchmarks can import it alone.
"""

from kernels_pallas.layouts import (
    LAYOUTS,
    pack,
    pack_1p6bit,
    pack_2bit,
    packed_shape,
    rows_per_plane,
    unpack,
    unpack_1p6bit,
    unpack_1p6bit_jnp,
    unpack_2bit,
    unpack_2bit_jnp,
    unpack_jnp,
)
from kernels_pallas.matmul import ternary_matmul
from kernels_pallas.mosaic_matmul import MosaicConfig, mosaic_ternary_matmul
from kernels_pallas.reference import ternary_matmul_reference
from kernels_pallas.triton_matmul import BlockConfig, default_config, ternary_matmul_pallas

__all__ = [
    "LAYOUTS",
    "BlockConfig",
    "MosaicConfig",
    "default_config",
    "mosaic_ternary_matmul",
    "pack",
    "pack_1p6bit",
    "pack_2bit",
    "packed_shape",
    "rows_per_plane",
    "ternary_matmul",
    "ternary_matmul_pallas",
    "ternary_matmul_reference",
    "unpack",
    "unpack_1p6bit",
    "unpack_1p6bit_jnp",
    "unpack_2bit",
    "unpack_2bit_jnp",
    "unpack_jnp",
]
