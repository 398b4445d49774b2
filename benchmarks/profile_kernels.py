"""Run each packed-ternary kernel once per shape, for a profiler (Nsight Compute) to measure.

    ncu --kernel-name regex:kernel --section SpeedOfLight --section Occupancy \
        --section LaunchStats --section WarpStateStats python benchmarks/profile_kernels.py

Fresh random nonzero weights and activations, made on the host so that the only GPU kernels are
the matmuls (run with XLA_PYTHON_CLIENT_PREALLOCATE=false: kernel replay then saves and restores
little memory); ``default_config`` block sizes, as the benchmark table uses; ``--mosaic
128/64/2/2/1`` profiles the Mosaic GPU kernel with that tiling instead (its launch is named
``kernel_mosaic_gpu_kernel``). Prints the config of each launch so the profiler's report can
be matched to it.
Imports only jax, numpy and kernels_pallas (the GPU image has no grain).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernels_pallas import layouts  # noqa: E402
from kernels_pallas.mosaic_matmul import MosaicConfig, mosaic_ternary_matmul  # noqa: E402
from kernels_pallas.triton_matmul import (  # noqa: E402
    BlockConfig,
    default_config,
    ternary_matmul_pallas,
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shapes", default="8192x28672,3072x8192", help="KxN,KxN,...")
    ap.add_argument("--ms", default="1,16", help="comma-separated batch sizes M")
    ap.add_argument(
        "--gemv",
        default=None,
        metavar="BN,BK,SPLIT,WARPS",
        help="profile the CUDA-core kernel (triton_gemv.py) with these block sizes instead",
    )
    ap.add_argument("--config", default=None, help="JSON of BlockConfig fields to profile instead")
    ap.add_argument(
        "--mosaic",
        default=None,
        metavar="TILE/BK/SPLIT/STAGES/WGS[/IN_FLIGHT[/INT8]],...",
        help="profile the Mosaic GPU kernel (mosaic_matmul.py, on the packed matrix transposed) "
        "with these tilings instead, one launch each",
    )
    ap.add_argument("--layouts", default="2bit,1.6bit")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    for shape in args.shapes.split(","):
        k, n = (int(v) for v in shape.split("x"))
        for layout in args.layouts.split(","):
            trits = rng.integers(-1, 2, (k, n), dtype=np.int8)
            packed_host = layouts.pack(trits, layout)
            packed = jax.device_put(packed_host)
            packed_t = jax.device_put(packed_host.T.copy()) if args.mosaic else None
            for m in (int(v) for v in args.ms.split(",")):
                x = jax.device_put(rng.standard_normal((m, k)).astype(jnp.bfloat16))
                cfg = default_config(layout, m, k, n)
                if args.gemv:
                    bn, bk, split, warps = (int(v) for v in args.gemv.split(","))
                    cfg = BlockConfig(
                        block_n=bn, block_k=bk, split_k=split, num_warps=warps, gemv=True
                    )
                if args.config:
                    cfg = BlockConfig(**json.loads(args.config))
                if args.mosaic:
                    for tiling in args.mosaic.split(","):
                        cfg = MosaicConfig.parse(tiling)
                        out = mosaic_ternary_matmul(x, packed_t, jnp.float32(0.02), layout, cfg)
                        out.block_until_ready()
                        print(f"launch: {layout} K={k} N={n} M={m} {cfg}", flush=True)
                    continue
                out = ternary_matmul_pallas(x, packed, jnp.float32(0.02), layout=layout, config=cfg)
                out.block_until_ready()
                print(f"launch: {layout} K={k} N={n} M={m} {cfg}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
