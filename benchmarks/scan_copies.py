"""What a ``lax.scan`` over stacked weights costs a single-token matmul chain: 8 layers of
``[1, 3072] @ [3072, 9216]`` run as a scan over one stacked ``[8, K, N]`` array and as an unrolled
loop over 8 separate arrays, in bf16 and with 2-bit packed weights (``ternary_matmul``). Prints
microseconds per chain (best of 5 x 20 calls).

Run on a GPU:  python benchmarks/scan_copies.py   (numbers in docs/benchmarks.md, "Decoding end
to end"). Imports only jax and kernels_pallas.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernels_pallas import ternary_matmul  # noqa: E402

LAYERS, K, N = 8, 3072, 9216


def best_microseconds(fn, *args) -> float:
    fn(*args).block_until_ready()
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(20):
            out = fn(*args)
        out.block_until_ready()
        best = min(best, (time.perf_counter() - t0) / 20)
    return best * 1e6


def _step(matmul, h, w):
    return (matmul(h, w)[:, :K] * 1e-3 + h).astype(jnp.bfloat16)


def scanned(matmul):
    def run(x, stacked):
        h, _ = jax.lax.scan(lambda h, w: (_step(matmul, h, w), None), x, stacked)
        return h

    return jax.jit(run)


def unrolled(matmul):
    def run(x, weights):
        for w in weights:
            x = _step(matmul, x, w)
        return x

    return jax.jit(run)


def bf16_dot(h, w):
    return jnp.dot(h, w)


def packed_dot(h, w):
    return ternary_matmul(h, w, jnp.float32(0.02), "2bit")


def main() -> int:
    x = jax.random.normal(jax.random.key(0), (1, K), jnp.bfloat16)
    bf16 = jax.random.normal(jax.random.key(1), (LAYERS, K, N), jnp.bfloat16) * 0.02
    codes = jax.random.randint(jax.random.key(2), (LAYERS, K // 4, N), 0, 255)
    packed = codes.astype(jnp.uint8) & 0x55  # valid 2-bit codes (0 or 1 in every plane)
    separate = {
        name: [jax.block_until_ready(w[i] + 0) for i in range(LAYERS)]
        for name, w in (("bf16", bf16), ("2bit", packed))
    }
    print(f"device {jax.devices()[0].device_kind}; {LAYERS} x [1, {K}] @ [{K}, {N}]")
    for name, stacked, matmul in (("bf16", bf16, bf16_dot), ("2bit", packed, packed_dot)):
        t_scan = best_microseconds(scanned(matmul), x, stacked)
        t_list = best_microseconds(unrolled(matmul), x, separate[name])
        print(f"{name:5s} scan over stacked {t_scan:7.1f} us   unrolled, separate {t_list:7.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
