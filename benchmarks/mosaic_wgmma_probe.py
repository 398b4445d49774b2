"""Check and time the Mosaic GPU kernel (``kernels_pallas/mosaic_matmul.py``) against float64,
the bf16 ``jnp.dot`` and the shipped Triton kernels, on a Hopper GPU.

Prints one line a check (relative error against the float64 ``x @ (scale * T)``) and one table
row a point: bf16 dot, shipped ``ternary_matmul``, and each listed Mosaic configuration (us).
The Mosaic kernel reads the packed matrix transposed (``[N, R]``), made once before timing.

Run on a GPU:  python benchmarks/mosaic_wgmma_probe.py [--ms 1,16,64] [--shapes 8192x28672]
Imports only jax, numpy and the project.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from kernels import _n_sets, _random_packed, _time_per_call, fit_mosaic  # noqa: E402

from kernels_pallas import layouts, ternary_matmul  # noqa: E402
from kernels_pallas.mosaic_matmul import MosaicConfig, mosaic_ternary_matmul  # noqa: E402


def check(layout: str) -> float:
    """Worst relative error over a few shapes (ragged M, split-K, per-column-block scales)."""
    rng = np.random.default_rng(0)
    worst = 0.0
    cases = [
        (1, 512, 256, MosaicConfig(64, 32, 2, 2), ()),
        (13, 2048, 512, MosaicConfig(128, 64, 2, 3), (4,)),
        (64, 1024, 256, MosaicConfig(256, 64, 1, 2), ()),
        (100, 768, 512, MosaicConfig(64, 32, 3, 2), (2,)),
        (200, 1024, 128, MosaicConfig(64, 32, 1, 2), ()),
        (13, 2048, 512, MosaicConfig(256, 64, 2, 2, 2), (8,)),
        (64, 1024, 256, MosaicConfig(128, 32, 2, 3, 2), ()),
    ]
    for m, k, n, cfg, scale_shape in cases:
        cfg = fit_mosaic(cfg, layout, k, n)
        trits = rng.integers(-1, 2, (k, n)).astype(np.int8)
        packed = layouts.pack(trits, layout)
        scale = rng.uniform(0.5, 2.0, scale_shape or ()).astype(np.float32)
        x = jnp.asarray(rng.standard_normal((m, k)), jnp.bfloat16)
        gamma = layouts.scale_per_column(jnp.asarray(scale), n)
        want = np.asarray(x, np.float64) @ (trits.astype(np.float64) * np.asarray(gamma)[None])
        got = mosaic_ternary_matmul(
            x, jnp.asarray(packed.T.copy()), jnp.asarray(scale), layout, cfg
        )
        got = np.asarray(got, np.float64)
        err = float(np.linalg.norm(got - want) / np.linalg.norm(want))
        worst = max(worst, err)
        print(f"check {layout} M={m} K={k} N={n} {cfg}: rel err {err:.2e}", flush=True)
    return worst


CONFIGS = (
    "128/64/2/3/1,128/64/0/2/1,64/32/0/3/1,64/64/4/4/1,"
    "256/64/0/2/2,128/64/0/4/2,256/32/0/4/2,128/32/0/4/2"
)
"""tile_n/block_k/split_k/stages/compute_wgs, comma-separated (split_k 0: enough CTAs)."""


def parse_configs(text: str) -> list[MosaicConfig]:
    return [MosaicConfig(*(int(v) for v in item.split("/"))) for item in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ms", default="1,16,64")
    ap.add_argument("--shapes", default="8192x28672")
    ap.add_argument("--layouts", default="2bit,1.6bit")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--configs", default=CONFIGS, help="tile_n/block_k/split_k/stages/wgs,...")
    args = ap.parse_args(argv)
    print(f"device: {jax.devices()[0].device_kind}, jax {jax.__version__}", flush=True)
    if not args.no_check:
        for layout in args.layouts.split(","):
            print(f"check {layout}: worst {check(layout):.2e}", flush=True)
    for shape in args.shapes.split(","):
        k, n = (int(v) for v in shape.split("x"))
        for layout in args.layouts.split(","):
            rows = layouts.rows_per_plane(k, layout)
            sets = _n_sets(rows * n)
            ws = [_random_packed(jax.random.key(10 + i), k, n, layout) for i in range(sets)]
            for m in (int(v) for v in args.ms.split(",")):
                xs = [
                    jax.random.normal(jax.random.key(100 + i), (m, k), jnp.bfloat16)
                    for i in range(sets)
                ]
                row = [f"{layout} M={m} {k}x{n}"]
                dense_sets = _n_sets(2 * k * n)
                dense = [
                    jax.random.normal(jax.random.key(20 + i), (k, n), jnp.bfloat16)
                    for i in range(dense_sets)
                ]
                t = _time_per_call(jnp.dot, xs, dense, args.reps)
                row.append(f"bf16 {t * 1e6:.1f}")
                del dense
                t = _time_per_call(
                    lambda x, w, layout=layout: ternary_matmul(x, w, jnp.float32(0.5), layout),
                    xs,
                    ws,
                    args.reps,
                )
                row.append(f"shipped {t * 1e6:.1f}")
                wts = [w.T.copy() for w in ws]
                for cfg in parse_configs(args.configs):
                    c = fit_mosaic(cfg, layout, k, n)
                    if c is None:
                        continue

                    def call(x, w, c=c, layout=layout):
                        return mosaic_ternary_matmul(x, w, jnp.float32(0.5), layout, c)

                    name = f"{c.tile_n}/{c.block_k}/{c.split_k}/{c.stages}/{c.compute_wgs}"
                    try:
                        t = _time_per_call(call, xs, wts, args.reps)
                        row.append(f"{name} {t * 1e6:.1f}")
                    except Exception as e:  # noqa: BLE001 - a probe reports and goes on
                        row.append(f"{name} {type(e).__name__}: {str(e).splitlines()[0][:100]}")
                print(" | ".join(row), flush=True)
                del wts
    return 0


if __name__ == "__main__":
    sys.exit(main())
