"""``ternary_matmul``: one entry point that picks the Pallas GPU kernel or the JAX reference."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kernels_pallas.mosaic_matmul import (
    MosaicConfig,
    is_hopper,
    mosaic_ternary_matmul,
    preferred_mosaic_config,
    use_mosaic,
    x_in_kernel_ok,
)
from kernels_pallas.reference import ternary_matmul_reference
from kernels_pallas.triton_matmul import BlockConfig, ternary_matmul_pallas


def _device_of(x: jax.Array) -> jax.Device | None:
    """The device ``x`` lives on (under tracing, jax's default device)."""
    try:
        devices = list(x.devices())
    except Exception:  # a tracer: fall back to the default device
        devices = jax.devices()[:1]
    return devices[0] if devices else None


def _cuda_device(x: jax.Array) -> bool:
    """True when ``x`` lives on (or, under tracing, jax defaults to) an NVIDIA GPU."""
    device = _device_of(x)
    return device is not None and is_nvidia_gpu(device)


def is_nvidia_gpu(device: jax.Device) -> bool:
    """True for a CUDA device: where ``ternary_matmul`` runs the Pallas kernels."""
    if device.platform != "gpu":
        return False
    return "rocm" not in getattr(device.client, "platform_version", "").lower()


def ternary_matmul(
    x: jax.Array,
    packed: jax.Array,
    scale: jax.Array,
    layout: str = "2bit",
    *,
    interpret: bool = False,
    config: BlockConfig | None = None,
    packed_t: jax.Array | None = None,
    mosaic_config: MosaicConfig | None = None,
) -> jax.Array:
    """``x @ (scale * T)`` for bf16 activations ``x [M, K]`` and a packed ternary ``T [K, N]``.

    Args:
      x: activations ``[M, K]`` (bfloat16 on the kernel path).
      packed: ``uint8 [R, N]`` in ``layout`` ("2bit" or "1.6bit"; see ``layouts.py``).
      scale: float32 gamma, shape ``()`` (per tensor) or ``(G,)`` (per block of N/G columns).
      layout: the packed layout.
      interpret: run the Pallas kernel in interpret mode (any device; for tests).
      config: block sizes for the kernel; ``None`` takes the measured table of this GPU model
        (kernels_pallas/tuned) for the shape, else ``default_config``.
      packed_t: optionally ``packed.T`` (``uint8 [N, R]``, the same bytes transposed, made once
        at load time): on a Hopper GPU, where the device's table or, for points it does not
        cover, the rules say the Mosaic GPU kernel is faster
        (:func:`~kernels_pallas.mosaic_matmul.preferred_mosaic_config`), the product is that
        kernel's (``mosaic_matmul.py``), which reads this orientation.
      mosaic_config: tiling for the Mosaic kernel, which then runs whatever the table says
        (needs ``packed_t``; M up to 256).

    Returns:
      ``[M, N]`` in ``x.dtype``. On an NVIDIA GPU (or with ``interpret``) this runs a Pallas
      kernel, which needs K and N multiples of 256: a CUDA-core kernel where ``config`` or the
      table says so (M = 1 by default; ``triton_gemv.py``, or ``triton_dp2a.py`` with
      ``x_int16``), else the MMA kernel (``triton_matmul.py``); elsewhere the unpack-then-dot
      reference.
    """
    device = _device_of(x)
    if packed_t is not None and not interpret and device is not None and is_hopper(device):
        m, k = x.shape
        cfg = mosaic_config
        if cfg is None and config is None:
            n = packed.shape[1]
            cfg = preferred_mosaic_config(layout, m, k, n, device)
            scale_shape = jnp.shape(scale)
            if cfg and cfg.x_in_kernel and not x_in_kernel_ok(cfg, layout, m, k, n, scale_shape):
                # e.g. gamma blocks the epilogue cannot take: two launches where the rules
                # take the Mosaic kernel anyway, else the Triton kernels
                cfg = cfg.replace(x_in_kernel=False) if use_mosaic(m, k, n) else None
        if cfg is not None:
            return mosaic_ternary_matmul(x, packed_t, scale, layout, cfg)
    if interpret or _cuda_device(x):
        return ternary_matmul_pallas(x, packed, scale, layout, config, interpret)
    return ternary_matmul_reference(x, packed, scale, layout)
