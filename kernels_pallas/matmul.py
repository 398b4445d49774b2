"""``ternary_matmul``: one entry point that picks the Pallas GPU kernel or the JAX reference."""

from __future__ import annotations

import jax

from kernels_pallas.reference import ternary_matmul_reference
from kernels_pallas.triton_matmul import BlockConfig, ternary_matmul_pallas


def _cuda_device(x: jax.Array) -> bool:
    """True when ``x`` lives on (or, under tracing, jax defaults to) an NVIDIA GPU."""
    try:
        devices = list(x.devices())
    except Exception:  # a tracer: fall back to the default device
        devices = jax.devices()[:1]
    return bool(devices) and is_nvidia_gpu(devices[0])


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

    Returns:
      ``[M, N]`` in ``x.dtype``. On an NVIDIA GPU (or with ``interpret``) this runs a Pallas
      kernel, which needs K and N multiples of 256: a CUDA-core kernel where ``config`` or the
      table says so (M = 1 by default; ``triton_gemv.py``, or ``triton_dp2a.py`` with
      ``x_int16``), else the MMA kernel (``triton_matmul.py``); elsewhere the unpack-then-dot
      reference.
    """
    if interpret or _cuda_device(x):
        return ternary_matmul_pallas(x, packed, scale, layout, config, interpret)
    return ternary_matmul_reference(x, packed, scale, layout)
