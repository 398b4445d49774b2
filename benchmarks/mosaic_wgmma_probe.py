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
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from kernels import _n_sets, _random_packed, _time_per_call, fit_mosaic  # noqa: E402

from kernels_pallas import (  # noqa: E402
    layouts,
    mosaic_matmul,
    ternary_matmul,
)
from kernels_pallas.mosaic_matmul import (  # noqa: E402
    MosaicConfig,
    default_mosaic_config,
    fragment_k_order,
    mosaic_ternary_matmul,
    preferred_mosaic_config,
)
from kernels_pallas.triton_matmul import num_sms, raw_code_operands  # noqa: E402


def check(layout: str, only_x_in_kernel: bool = False) -> float:
    """Worst relative error over a few shapes (ragged M, split-K, per-column-block scales);
    ``only_x_in_kernel``: just the cases that prepare x in the kernel."""
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
        (13, 2048, 512, MosaicConfig(128, 64, 2, 3, in_flight=1), (4,)),
        (64, 1024, 256, MosaicConfig(128, 32, 2, 3, 2, in_flight=1), ()),
        (100, 768, 512, MosaicConfig(64, 32, 3, 2, in_flight=2), (2,)),
        (120, 1024, 128, MosaicConfig(128, 32, 1, 3, 2, in_flight=3), ()),
        (1, 512, 256, MosaicConfig(64, 64, 1, 2, int8=True), ()),
        (13, 2560, 512, MosaicConfig(128, 64, 2, 3, int8=True), (4,)),
        (100, 1280, 256, MosaicConfig(64, 64, 2, 2, int8=True), (2,)),
        (13, 2560, 512, MosaicConfig(256, 64, 2, 2, 2, int8=True), (8,)),
        (13, 2560, 512, MosaicConfig(128, 64, 2, 3, in_flight=1, int8=True), (4,)),
        (64, 2560, 256, MosaicConfig(128, 64, 1, 3, 2, in_flight=2, int8=True), ()),
        (120, 1280, 128, MosaicConfig(64, 64, 1, 2, int8=True), ()),
        (5, 2560, 512, MosaicConfig(128, 128, 1, 2, int8=True), (4,)),
        (13, 2560, 1024, MosaicConfig(128, 64, 1, 2, int8=True), (16,)),
        (16, 2560, 512, MosaicConfig(128, 128, 1, 2, in_flight=2, int8=True), ()),
        (1, 2048, 768, MosaicConfig(128, 64, 1, 2, 2, int8=True), (3,)),
        # x prepared in the kernel (x_in_kernel, M <= 4; rel err 1.65e-3-1.69e-3 on the H200)
        (1, 2560, 512, MosaicConfig(128, 128, 1, 2, int8=True, x_in_kernel=True), ()),
        (2, 2560, 1024, MosaicConfig(128, 128, 1, 2, int8=True, x_in_kernel=True), (8,)),
        (1, 8192, 256, MosaicConfig(128, 128, 1, 3, int8=True, x_in_kernel=True), (2,)),
        (2, 2048, 512, MosaicConfig(128, 128, 1, 2, int8=True, x_in_kernel=True), (4,)),
        (4, 2560, 512, MosaicConfig(128, 128, 1, 2, int8=True, x_in_kernel=True), ()),
        # one step (fewer than the stages), 1.6-bit's last plane without columns
        (1, 512, 512, MosaicConfig(128, 128, 1, 2, int8=True, x_in_kernel=True), ()),
        (3, 8192, 512, MosaicConfig(128, 128, 1, 2, int8=True, x_in_kernel=True), (4,)),
        (4, 8192, 256, MosaicConfig(128, 128, 1, 2, int8=True, x_in_kernel=True), ()),
    ]
    for m, k, n, cfg, scale_shape in cases:
        if only_x_in_kernel and not cfg.x_in_kernel:
            continue
        fitted = fit_mosaic(cfg, layout, k, n)
        if fitted is None:
            print(f"check {layout} M={m} K={k} N={n} {cfg}: skipped, does not tile", flush=True)
            continue
        cfg = fitted
        trits = rng.integers(-1, 2, (k, n)).astype(np.int8)
        packed = layouts.pack(trits, layout)
        scale = rng.uniform(0.5, 2.0, scale_shape or ()).astype(np.float32)
        x = jnp.asarray(rng.standard_normal((m, k)), jnp.bfloat16)
        gamma = layouts.scale_per_column(jnp.asarray(scale), n)
        want = np.asarray(x, np.float64) @ (trits.astype(np.float64) * np.asarray(gamma)[None])
        # the s8 kernel's own epilogue (one split) and the separate one
        fused = mosaic_matmul.fused_int8_epilogue(cfg, n, scale.shape)
        for fuse in (True, False) if fused and not cfg.x_in_kernel else (True,):
            try:
                got = mosaic_ternary_matmul(
                    x, jnp.asarray(packed.T.copy()), jnp.asarray(scale), layout, cfg, fuse
                )
                got = np.asarray(got, np.float64)
            except Exception as e:  # noqa: BLE001 - one failing case must not hide the rest
                print(f"check {layout} M={m} K={k} N={n} {cfg}: {type(e).__name__}: {e}"[:400])
                worst = float("inf")
                continue
            err = float(np.linalg.norm(got - want) / np.linalg.norm(want))
            worst = max(worst, err)
            how = "" if not fused else (" fused" if fuse else " separate epilogue")
            print(f"check {layout} M={m} K={k} N={n} {cfg}{how}: rel err {err:.2e}", flush=True)
    return worst


CONFIGS = (
    "128/64/2/3/1,128/64/0/2/1,64/32/0/3/1,64/64/4/4/1,"
    "256/64/0/2/2,128/64/0/4/2,256/32/0/4/2,128/32/0/4/2"
)
"""tile_n/block_k/split_k/stages/compute_wgs[/in_flight[/int8]], comma-separated (split_k 0:
enough CTAs; int8 0 or 1); ``shipped``: the configuration ``ternary_matmul`` would take at the
point (table or rules)."""


def parse_configs(text: str) -> list[MosaicConfig | None]:
    """The ``--configs`` list; None stands for ``shipped``."""
    return [None if item == "shipped" else MosaicConfig.parse(item) for item in text.split(",")]


shipped_operands = mosaic_matmul.mosaic_operands


def gather_operands(x, layout: str, rows: int, m_pad: int):
    """x's preparation with fragment_k_order as an index array (a gather, as before
    2026-12-02), for ``--prep``: the same values as ``mosaic_operands``."""
    m = x.shape[0]
    x_scaled, offset = raw_code_operands(x, layout, rows)
    x_perm = jnp.pad(x_scaled[:, fragment_k_order(x_scaled.shape[1])], ((0, m_pad - m), (0, 0)))
    return x_perm.reshape(m_pad, -1, rows).transpose(1, 0, 2), offset


def point_configs(
    listed: list[MosaicConfig | None],
    in_flight: list[int],
    layout: str,
    m: int,
    k: int,
    n: int,
    int8: Sequence[bool] = (),
) -> list[MosaicConfig]:
    """The listed configurations fitted to the point (``shipped`` resolved), each at every
    ``in_flight`` value (``--in-flight``; none: as listed) and every ``int8`` value
    (``--int8``; int8 takes 64 packed rows a step where the listing says 32), duplicates and
    those with in_flight on one stage dropped."""
    device = jax.devices()[0]
    out = []
    for cfg in listed:
        if cfg is None:
            cfg = preferred_mosaic_config(layout, m, k, n, device) or default_mosaic_config(
                layout, m, k, n, num_sms(device)
            )
        c = fit_mosaic(cfg, layout, k, n)
        if c is None:
            continue
        variants = [c.replace(in_flight=f) for f in in_flight] if in_flight else [c]
        if int8:  # fit_mosaic keeps an s8 tiling's block_k at 64 or more, or gives None
            variants = [
                fit_mosaic(v.replace(int8=True, block_k=max(v.block_k, 64)), layout, k, n)
                if i
                else v.replace(int8=False)
                for v in variants
                for i in int8
            ]
        out += [v for v in variants if v is not None and not (v.in_flight and v.stages < 2)]
    return list(dict.fromkeys(out))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ms", default="1,16,64")
    ap.add_argument("--shapes", default="8192x28672")
    ap.add_argument("--layouts", default="2bit,1.6bit")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument(
        "--check-x-in-kernel",
        action="store_true",
        help="check only the cases that prepare x in the kernel (x_in_kernel)",
    )
    ap.add_argument(
        "--configs",
        default=CONFIGS,
        help="tile_n/block_k/split_k/stages/wgs[/in_flight[/int8]],... or shipped",
    )
    ap.add_argument(
        "--in-flight", default="", help="time each configuration at these in_flight values"
    )
    ap.add_argument(
        "--int8", default="", help="time each configuration with int8 off and/or on: 0,1"
    )
    ap.add_argument("--rounds", type=int, default=1, help="time the configurations this often")
    ap.add_argument(
        "--prep",
        action="store_true",
        help="also time each configuration with x prepared by an indexed gather (the K "
        "permutation as it was before 2026-12-02) instead of the shipped reshape",
    )
    ap.add_argument(
        "--separate-epilogue",
        action="store_true",
        help="also time each s8 configuration of one split with the epilogue after the kernel "
        "(fuse_epilogue=False), as before 2026-12-02",
    )
    args = ap.parse_args(argv)
    in_flight = [int(v) for v in args.in_flight.split(",")] if args.in_flight else []
    int8 = [bool(int(v)) for v in args.int8.split(",")] if args.int8 else []
    print(f"device: {jax.devices()[0].device_kind}, jax {jax.__version__}", flush=True)
    if not args.no_check:
        for layout in args.layouts.split(","):
            worst = check(layout, args.check_x_in_kernel)
            print(f"check {layout}: worst {worst:.2e}", flush=True)
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
                configs = point_configs(
                    parse_configs(args.configs), in_flight, layout, m, k, n, int8
                )
                runs = [
                    (cfg, fuse)
                    for cfg in configs
                    for fuse in (
                        (True, False)
                        if args.separate_epilogue and mosaic_matmul.fused_int8_epilogue(cfg, n, ())
                        else (True,)
                    )
                ]
                for c, fuse in runs * args.rounds:

                    def call(x, w, c=c, layout=layout, fuse=fuse):
                        return mosaic_ternary_matmul(x, w, jnp.float32(0.5), layout, c, fuse)

                    name = "/".join(str(v) for v in dataclasses.astuple(c))
                    name += "" if fuse else " sep"
                    for prep in ("", "gather") if args.prep else ("",):
                        if args.prep:  # retrace with this x preparation
                            mosaic_matmul.mosaic_operands = (
                                gather_operands if prep else shipped_operands
                            )
                            jax.clear_caches()
                        label = f"{name} {prep}".strip()
                        try:
                            t = _time_per_call(call, xs, wts, args.reps)
                            row.append(f"{label} {t * 1e6:.1f}")
                        except Exception as e:  # noqa: BLE001 - a probe reports and goes on
                            row.append(
                                f"{label} {type(e).__name__}: {str(e).splitlines()[0][:100]}"
                            )
                    mosaic_matmul.mosaic_operands = shipped_operands
                print(" | ".join(row), flush=True)
                del wts
    return 0


if __name__ == "__main__":
    sys.exit(main())
