"""Packed ternary weight layouts: the one definition that the exporter writes and the kernels read.

A ternary matrix ``T`` of shape ``[K, N]`` (entries in {-1, 0, +1}, ``K`` input features, ``N``
output features, as in ``y = x @ (scale * T)``) is stored as a ``uint8`` array ``packed`` of shape
``[R, N]``. Each byte holds several trits of one output column ``n``, taken from K-rows that lie
``R`` apart ("plane layout"): plane ``j`` of byte ``(r, n)`` is the trit ``T[j * R + r, n]``.
A kernel that reads a tile of packed rows ``[r0, r0 + bk)`` therefore decodes it into one
``[bk, bn]`` tile per plane, each multiplying a contiguous slice of ``x``.

``"2bit"``   4 planes, ``R = K / 4`` (K a multiple of 4). Plane ``j`` lives in bits
             ``[2j, 2j + 2)`` as the code ``T + 1`` in {0, 1, 2}; code 3 is invalid.
``"1.6bit"`` 5 planes, ``R = 32 * ceil(K / 160)`` (a multiple of 32, so GPU tiles of 32 packed
             rows always fit; the rows ``K <= k < 5R`` are zero padding). The digits
             ``d_j = T[j * R + r, n] + 1`` form ``v = sum_j d_j * 3**(4 - j)`` in [0, 243), and
             the byte is ``q = ceil(v * 256 / 243)``, as in llama.cpp's TQ1_0, so that
             ``d_j = ((q * 3**j mod 256) * 3) >> 8``: a multiply and a shift, no division.

The scale ``gamma`` is float32, either one value for the tensor (shape ``()`` or ``(1,)``) or one
value per block of ``N / G`` consecutive output columns (shape ``(G,)``, ``G`` dividing ``N``).
``docs/formats.md`` gives the same definition byte for byte.
"""

from __future__ import annotations

import math
from typing import Literal

import jax.numpy as jnp
import numpy as np

Layout = Literal["2bit", "1.6bit"]
LAYOUTS: tuple[str, ...] = ("2bit", "1.6bit")

TRITS_PER_BYTE: dict[str, int] = {"2bit": 4, "1.6bit": 5}
"""Planes (trits) packed into one byte, per layout."""

ROW_ALIGN_1P6BIT = 32
"""Rows per plane of the 1.6-bit layout are a multiple of this (GPU tile height)."""

_POW3 = np.array([81, 27, 9, 3, 1], dtype=np.int64)  # weight of plane j's digit in v


def check_layout(layout: str) -> str:
    """Return ``layout`` if known, else raise a ValueError that lists the known names."""
    if layout not in TRITS_PER_BYTE:
        raise ValueError(f"unknown packed layout {layout!r}; expected one of {LAYOUTS}")
    return layout


def rows_per_plane(k: int, layout: str) -> int:
    """Rows ``R`` of the packed array for ``K = k`` input features (see the module docstring)."""
    check_layout(layout)
    if k <= 0:
        raise ValueError(f"{layout} layout: K must be positive, got K={k}")
    if layout == "2bit":
        if k % 4:
            raise ValueError(
                f"2bit layout: K={k} is not a multiple of 4 (4 trits of one column share a byte)"
            )
        return k // 4
    return ROW_ALIGN_1P6BIT * math.ceil(k / (5 * ROW_ALIGN_1P6BIT))


def packed_shape(k: int, n: int, layout: str) -> tuple[int, int]:
    """Shape ``(R, N)`` of the packed ``uint8`` array for a ``[K, N]`` ternary matrix."""
    return rows_per_plane(k, layout), n


def _check_trits(trits: np.ndarray, who: str) -> np.ndarray:
    trits = np.asarray(trits)
    if trits.ndim != 2:
        raise ValueError(f"{who}: trits must be 2-D [K, N], got shape {trits.shape}")
    if not np.issubdtype(trits.dtype, np.integer):
        raise ValueError(f"{who}: trits must be an integer array, got dtype {trits.dtype}")
    if trits.size and (trits.min() < -1 or trits.max() > 1):
        raise ValueError(
            f"{who}: trits of shape {trits.shape} must lie in {{-1, 0, 1}}, "
            f"found values in [{trits.min()}, {trits.max()}]"
        )
    return trits


def _check_packed(packed: np.ndarray, who: str) -> np.ndarray:
    packed = np.asarray(packed)
    if packed.ndim != 2 or packed.dtype != np.uint8:
        raise ValueError(
            f"{who}: packed must be a 2-D uint8 array [R, N], got shape {packed.shape} "
            f"dtype {packed.dtype}"
        )
    return packed


# ----------------------------------------------------------------------------------------------
# 2-bit: 4 trits a byte


def pack_2bit(trits: np.ndarray) -> np.ndarray:
    """Pack int trits ``[K, N]`` (K a multiple of 4) into the 2-bit plane layout ``[K/4, N]``."""
    trits = _check_trits(trits, "pack_2bit")
    k, n = trits.shape
    r = rows_per_plane(k, "2bit")
    codes = (trits.astype(np.int16) + 1).astype(np.uint8).reshape(4, r, n)
    return codes[0] | (codes[1] << 2) | (codes[2] << 4) | (codes[3] << 6)


def unpack_2bit(packed: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_2bit`: ``uint8 [R, N]`` -> ``int8 [4R, N]``; code 3 is an error."""
    packed = _check_packed(packed, "unpack_2bit")
    r, n = packed.shape
    shifts = np.arange(0, 8, 2, dtype=np.uint8)[:, None, None]
    codes = (packed[None] >> shifts) & 3  # [4, R, N]
    if np.any(codes == 3):
        raise ValueError(
            f"unpack_2bit: packed array of shape {packed.shape} holds the invalid 2-bit code 3"
        )
    return (codes.astype(np.int8) - 1).reshape(4 * r, n)


# ----------------------------------------------------------------------------------------------
# 1.6-bit: 5 trits a byte, base 3


def _encode_base3(v: np.ndarray) -> np.ndarray:
    """Byte for the base-3 value ``v`` in [0, 243): ``ceil(v * 256 / 243)``."""
    return ((v.astype(np.int64) * 256 + 242) // 243).astype(np.uint8)


def _digits_of_bytes(q: np.ndarray) -> np.ndarray:
    """Base-3 digits ``[5, ...]`` of bytes ``q``: digit j is the high byte of ``3 m_j``,
    ``m_0 = q``, ``m_{j+1} = 3 m_j mod 256`` (what the kernels compute)."""
    digits, m = [], q.astype(np.int64)
    for _ in range(5):
        u = m * 3
        digits.append(u >> 8)
        m = u & 0xFF
    return np.stack(digits)


_BYTE_OF_VALUE = _encode_base3(np.arange(243))
"""The byte of each base-3 value (``pack_1p6bit``'s table)."""
_ALL_DIGITS = _digits_of_bytes(np.arange(256))  # [5, 256]
_VALID_BYTE = _BYTE_OF_VALUE[np.tensordot(_POW3, _ALL_DIGITS, axes=1) % 243] == np.arange(256)
"""Bytes that encode a base-3 value (243 of the 256)."""
_TRIT_OF_BYTE = (_ALL_DIGITS - 1).astype(np.int8)
"""Trit of digit j of each byte (``unpack_1p6bit``'s tables, [5, 256])."""


def pack_1p6bit(trits: np.ndarray) -> np.ndarray:
    """Pack int trits ``[K, N]`` into the 1.6-bit layout ``[R, N]``, ``R = rows_per_plane(K)``."""
    trits = _check_trits(trits, "pack_1p6bit")
    k, n = trits.shape
    r = rows_per_plane(k, "1.6bit")
    digits = np.ones((5 * r, n), dtype=np.uint8)  # padding rows hold trit 0 (digit 1)
    digits[:k] = trits + 1
    planes = digits.reshape(5, r, n)
    v = np.zeros((r, n), np.uint16)  # in [0, 243): uint16 arithmetic, then a table lookup
    for j in range(5):
        v += planes[j] * np.uint16(_POW3[j])
    return _BYTE_OF_VALUE[v]


def unpack_1p6bit(packed: np.ndarray, k: int) -> np.ndarray:
    """Inverse of :func:`pack_1p6bit`: ``uint8 [R, N]`` -> ``int8 [K, N]``.

    ``K`` is needed because several K share one ``R``. Bytes that no base-3 value encodes
    (13 of the 256) are an error.
    """
    packed = _check_packed(packed, "unpack_1p6bit")
    r, n = packed.shape
    if rows_per_plane(k, "1.6bit") != r:
        raise ValueError(
            f"unpack_1p6bit: packed shape {packed.shape} does not fit K={k}: "
            f"expected {rows_per_plane(k, '1.6bit')} rows"
        )
    if not np.all(_VALID_BYTE[packed]):
        raise ValueError(
            f"unpack_1p6bit: packed array of shape {packed.shape} holds bytes that are not "
            "ceil(v*256/243) for any base-3 value v"
        )
    trits = np.empty((5, r, n), dtype=np.int8)
    for j in range(5):  # a table lookup a plane: the trit of digit j of each byte
        trits[j] = _TRIT_OF_BYTE[j][packed]
    return trits.reshape(5 * r, n)[:k]


def pack(trits: np.ndarray, layout: str) -> np.ndarray:
    """Pack ``trits [K, N]`` in ``layout`` ("2bit" or "1.6bit")."""
    return pack_2bit(trits) if check_layout(layout) == "2bit" else pack_1p6bit(trits)


def unpack(packed: np.ndarray, k: int, layout: str) -> np.ndarray:
    """Unpack ``packed [R, N]`` of ``layout`` into int8 trits ``[K, N]``."""
    if check_layout(layout) == "2bit":
        if rows_per_plane(k, "2bit") != np.shape(packed)[0]:
            raise ValueError(
                f"unpack: 2bit packed shape {np.shape(packed)} does not fit K={k}: "
                f"expected {k // 4} rows"
            )
        return unpack_2bit(packed)
    return unpack_1p6bit(packed, k)


# ----------------------------------------------------------------------------------------------
# jnp equivalents (traceable; no validation of codes, which would need a host round trip)


def unpack_2bit_jnp(packed: jnp.ndarray) -> jnp.ndarray:
    """``uint8 [R, N]`` -> ``int8 [4R, N]`` trits, as :func:`unpack_2bit`."""
    r, n = packed.shape
    shifts = jnp.arange(0, 8, 2, dtype=jnp.uint8)[:, None, None]
    codes = (packed[None] >> shifts) & 3
    return (codes.astype(jnp.int8) - 1).reshape(4 * r, n)


def unpack_1p6bit_jnp(packed: jnp.ndarray, k: int) -> jnp.ndarray:
    """``uint8 [R, N]`` -> ``int8 [K, N]`` trits, as :func:`unpack_1p6bit`."""
    r, n = packed.shape
    if rows_per_plane(k, "1.6bit") != r:
        raise ValueError(
            f"unpack_1p6bit_jnp: packed shape {packed.shape} does not fit K={k}: "
            f"expected {rows_per_plane(k, '1.6bit')} rows"
        )
    m = packed.astype(jnp.int32)
    planes = []
    for _ in range(5):
        u = m * 3
        planes.append(u >> 8)
        m = u & 0xFF
    digits = jnp.stack(planes).reshape(5 * r, n)[:k]
    return (digits - 1).astype(jnp.int8)


def unpack_jnp(packed: jnp.ndarray, k: int, layout: str) -> jnp.ndarray:
    """Traceable :func:`unpack`."""
    if check_layout(layout) == "2bit":
        if rows_per_plane(k, "2bit") != packed.shape[0]:
            raise ValueError(
                f"unpack_jnp: 2bit packed shape {packed.shape} does not fit K={k}: "
                f"expected {k // 4} rows"
            )
        return unpack_2bit_jnp(packed)
    return unpack_1p6bit_jnp(packed, k)


def scale_per_column(scale: jnp.ndarray, n: int) -> jnp.ndarray:
    """Expand a stored scale (``()``, ``(1,)`` or ``(G,)`` with G | N) to float32 ``[N]``."""
    scale = jnp.asarray(scale, jnp.float32)
    groups = check_scale_shape(scale.shape, n)
    # a broadcast, not jnp.repeat's gather: XLA fuses it, and one scale a column is a reshape
    return jnp.broadcast_to(scale.reshape(groups, 1), (groups, n // groups)).reshape(n)


def check_scale_shape(shape: tuple[int, ...], n: int) -> int:
    """Number of column blocks ``G`` of a scale of ``shape`` for ``N = n`` columns."""
    if shape == ():
        return 1
    if len(shape) == 1 and shape[0] >= 1 and n % shape[0] == 0:
        return shape[0]
    raise ValueError(
        f"scale of shape {shape} does not fit N={n}: expected () for one gamma per tensor or "
        "(G,) with G dividing N for one gamma per block of N/G output columns"
    )
