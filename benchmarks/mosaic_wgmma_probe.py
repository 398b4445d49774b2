"""Prototype of the Mosaic GPU route for the packed-ternary matmul, with its check and timing.

Not a product kernel: ``kernels_pallas`` does not call it. It is the measured starting point of
the route that docs/benchmarks.md names as left to do: the decoded weights as ``wgmma``'s
register A operand (no shared-memory round trip), a TMA pipeline for the packed bytes
(``plgpu.emit_pipeline``) and ``x`` transposed as the B operand, so that M only pads the MMA's
N side (to 8). Mosaic's A tile is [output columns, K], so it reads the 2-bit packed bytes
transposed ([N, R], one copy at load time).

Measured (NVIDIA H100 80GB HBM3, jax 0.11.2, 2026-11-23): correct (1.8e-3 against float64),
but 84 to 86 us on 8192 x 28672 at M = 1 and 16, against 38 us for the CUDA-core kernel and
46 us for the Triton MMA kernel. Mosaic rejects shifts on 8-bit registers (so planes are masked
in place and rescaled in bf16), converts each byte with a plain integer-to-float conversion, and
this version waits for its ``wgmma``s at the end of every step; those are the next things to
change. Mosaic's CPU interpreter (jax 0.10.2) has no register-A ``wgmma``, so only the GPU can
run it. On the NVIDIA H200 (2026-12-01) it took 159-186 us at M = 64 and 85-92 us at M = 16 on
the same shape, against 122 and 48 us for the Triton kernel and 116-119 us for bf16: not the
route to M = 64 in this form either.

Run on a GPU:  python benchmarks/mosaic_wgmma_probe.py [M,M,...]   (default 1,16)
Imports only jax, numpy and kernels_pallas.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.experimental.pallas as pl
import jax.experimental.pallas.mosaic_gpu as plgpu
import jax.numpy as jnp
import numpy as np
from jax import lax

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from kernels import _random_packed, _time_per_call  # noqa: E402

from kernels_pallas import layouts, ternary_matmul  # noqa: E402

TILE_N = 64  # output columns a CTA: one warpgroup's wgmma M


def mosaic_ternary_2bit(
    x: jax.Array,
    packed_t: jax.Array,
    scale: float,
    block_k: int = 64,
    split: int = 4,
    stages: int = 4,
) -> jax.Array:
    """``x @ (scale * T)`` for bf16 ``x [M, K]`` and the 2-bit layout stored transposed
    (``packed_t = packed.T``, ``[N, R]``); ``R / block_k`` must divide into ``split`` parts."""
    m, _ = x.shape
    n, rows = packed_t.shape
    steps = rows // block_k
    if steps % split or n % TILE_N:
        raise ValueError(f"probe: split={split} must divide {steps} steps, {TILE_N} must divide N")
    steps_per_split = steps // split
    mp = max(8, -(-m // 8) * 8)
    xp = jnp.zeros((mp, 4 * rows), jnp.bfloat16).at[:m, : x.shape[1]].set(x)
    w_swizzle = plgpu.find_swizzle(block_k * 8, "w")
    x_swizzle = plgpu.find_swizzle(block_k * 16, "x")
    w_transforms = (plgpu.TilingTransform((8, w_swizzle)), plgpu.SwizzleTransform(w_swizzle))
    x_transforms = (
        plgpu.TilingTransform((8, x_swizzle // 2)),
        plgpu.SwizzleTransform(x_swizzle),
    )

    def kernel(x_gmem, w_gmem, o_gmem, o_smem):
        n_i, s_i = lax.axis_index("n"), lax.axis_index("s")
        k0 = s_i * steps_per_split * block_k
        width = steps_per_split * block_k

        def acc_scope(acc_ref):
            def body(_, w_smem, *x_smems):
                a8 = w_smem[...]
                for j in range(4):  # plane j: keep its code in place, rescale in bf16
                    code = a8 & jnp.uint8(3 << (2 * j))
                    a = code.astype(jnp.bfloat16) * jnp.bfloat16(4.0**-j) - jnp.bfloat16(1)
                    plgpu.wgmma(acc_ref, a, x_smems[j].T)
                plgpu.wgmma_wait(0)

            specs = [plgpu.BlockSpec((TILE_N, block_k), lambda s: (0, s), transforms=w_transforms)]
            specs += [
                plgpu.BlockSpec((mp, block_k), lambda s: (0, s), transforms=x_transforms)
                for _ in range(4)
            ]
            plgpu.emit_pipeline(
                body, grid=(steps_per_split,), in_specs=specs, max_concurrent_steps=stages
            )(
                w_gmem.at[pl.ds(n_i * TILE_N, TILE_N), pl.ds(k0, width)],
                *[x_gmem.at[:, pl.ds(j * rows + k0, width)] for j in range(4)],
            )
            o_smem[...] = acc_ref[...]

        pl.run_scoped(acc_scope, plgpu.ACC((TILE_N, mp), jnp.float32))
        plgpu.commit_smem()
        plgpu.copy_smem_to_gmem(o_smem, o_gmem.at[s_i, pl.ds(n_i * TILE_N, TILE_N)])
        plgpu.wait_smem_to_gmem(0)

    out = plgpu.kernel(
        kernel,
        out_type=jax.ShapeDtypeStruct((split, n, mp), jnp.float32),
        grid=(n // TILE_N, split),
        grid_names=("n", "s"),
        scratch_types=[plgpu.SMEM((TILE_N, mp), jnp.float32)],
    )(xp, packed_t)
    return (out.sum(0)[:, :m].T * jnp.float32(scale)).astype(jnp.bfloat16)


def main() -> int:
    rng = np.random.default_rng(0)
    for m, k, n, split in [(1, 512, 128, 2), (16, 2048, 512, 2)]:
        trits = rng.integers(-1, 2, (k, n)).astype(np.int8)
        packed_t = jnp.asarray(layouts.pack_2bit(trits).T.copy())
        x = jnp.asarray(rng.standard_normal((m, k)), jnp.bfloat16)
        want = np.asarray(x, np.float64) @ trits.astype(np.float64) * 0.5
        got = np.asarray(mosaic_ternary_2bit(x, packed_t, 0.5, split=split), np.float64)
        err = np.linalg.norm(got - want) / np.linalg.norm(want)
        print(f"check M={m} K={k} N={n}: rel err {err:.2e}", flush=True)
    k, n = 8192, 28672
    for m in (int(v) for v in (sys.argv[1] if len(sys.argv) > 1 else "1,16").split(",")):
        xs = [jax.random.normal(jax.random.key(i), (m, k), jnp.bfloat16) for i in range(3)]
        ws = [_random_packed(jax.random.key(10 + i), k, n, "2bit").T.copy() for i in range(3)]
        dense = [jax.random.normal(jax.random.key(20 + i), (k, n), jnp.bfloat16) for i in range(3)]
        t = _time_per_call(jnp.dot, xs, dense, 5)
        print(f"M={m} {k}x{n} bf16 dot: {t * 1e6:.1f} us", flush=True)
        del dense
        packed = [w.T.copy() for w in ws]
        t = _time_per_call(lambda x, w: ternary_matmul(x, w, 0.5, "2bit"), xs, packed, 5)
        print(f"M={m} {k}x{n} shipped 2-bit kernel: {t * 1e6:.1f} us", flush=True)
        del packed
        for block_k, split, stages in [(64, 4, 4), (64, 8, 4), (128, 4, 3), (64, 16, 6)]:

            def call(x, w, block_k=block_k, split=split, stages=stages):
                return mosaic_ternary_2bit(x, w, 0.5, block_k, split, stages)

            try:
                t = _time_per_call(call, xs, ws, 5)
            except Exception as e:  # noqa: BLE001 - a probe reports and goes on
                print(
                    f"M={m} block_k={block_k} split={split} stages={stages}: "
                    f"{type(e).__name__}: {str(e).splitlines()[0][:120]}",
                    flush=True,
                )
                continue
            print(
                f"M={m} {k}x{n} block_k={block_k} split={split} stages={stages}: {t * 1e6:.1f} us"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
