"""End-to-end decoding speed: a Spectra-shaped TriLM generating tokens from bf16 weights and from
its 2-bit and 1.6-bit packed weights (``trilm_jax/inference/packed.py``), one table.

The model has random latent weights (speed does not depend on them), the shapes of a preset
(``--preset``, default the Spectra 3.9B) and ``--layers`` of its blocks; every variant holds its
embedding and head in bf16 too, so that the head is read at the same cost. Time per token is the
slope between two greedy generations of different lengths (each compiled first, then timed), so
prefill and compilation drop out. Bytes per token: the weights one step reads. ``--fuse on,off``
times each variant with q, k, v fused into one matmul and gate, up into another (what
``generate`` does) and with the seven separate matmuls a block. ``--transposed`` gives the packed
linears their bytes' transposed copy too (the Mosaic kernel's operand; ``auto``: the linears that
the kernel takes at the batch, ``mosaic_linears``, as ``generate`` does, and no row where none
does), column ``T``.

Run on a GPU:  python benchmarks/decode.py [--preset configs/models/spectra-3.9b.yaml]
Imports only jax, flax, numpy, yaml and this repository's model code (no grain).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import yaml
from flax import nnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trilm_jax.config import ModelConfig  # noqa: E402
from trilm_jax.inference.generate import (  # noqa: E402
    block_linear_shapes,
    freeze_weights,
    generate,
    mosaic_linears,
    prepare_decoding,
    wants_transposed_packed,
)
from trilm_jax.inference.packed import pack_model  # noqa: E402
from trilm_jax.model.transformer import Linear, Transformer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _bf16_everywhere(model: Transformer) -> Transformer:
    """Float linears, embedding and head stored in bf16 (the decode loop then casts nothing)."""
    # (``v[...] = x`` would keep the variable's float32 dtype: replace the value instead)
    for _, module in nnx.iter_graph(model):
        if isinstance(module, Linear) and module.kernel is not None:
            module.kernel.set_value(module.kernel.get_value().astype(jnp.bfloat16))
    model.embed.set_value(model.embed.get_value().astype(jnp.bfloat16))
    if not model.config.tie_embeddings:
        model.head.set_value(model.head.get_value().astype(jnp.bfloat16))
    return model


def _weight_bytes(model: Transformer) -> int:
    """Bytes of every parameter but the embedding table (one row of it is read a token)."""
    state = nnx.state(model)
    total = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))
    return total - model.embed[...].size * model.embed[...].dtype.itemsize


def seconds_per_token(
    model: Transformer,
    batch: int,
    short: int,
    long: int,
    fuse: bool = True,
    transposed: bool | Callable[[Linear], bool] = False,
) -> tuple[float, float]:
    """Wall and host-CPU (all threads) seconds a token: slopes between ``short`` and ``long``
    new tokens. CPU time near the wall time means the host, launching kernels, sets the pace."""
    prompt = np.tile(np.arange(1, 17, dtype=np.int32), (batch, 1))
    # split once: the per-layer copies are hundreds of small host-dispatched operations, whose
    # time varies by tens of milliseconds a call
    prepared = prepare_decoding(model, fuse, transposed)
    times = {}
    for n in (short, long):
        run = partial(generate, prepared, prompt, n, compute_dtype=jnp.bfloat16)
        run()  # compile, warm up
        best = (float("inf"), 0.0)
        for _ in range(5):
            t0, c0 = time.perf_counter(), time.process_time()
            run()  # returns numpy: waits
            best = min(best, (time.perf_counter() - t0, time.process_time() - c0))
        times[n] = best
    wall, cpu = ((times[long][i] - times[short][i]) / (long - short) for i in (0, 1))
    return wall, cpu


def build_variants(
    preset: Path, layers: int, max_seq_len: int, names: tuple[str, ...] = ("bf16", "2bit", "1.6bit")
) -> tuple[ModelConfig, dict]:
    """The preset's config with ``layers`` blocks, and {name: model} for ``names`` among "bf16",
    "2bit" and "1.6bit"."""
    fields = yaml.safe_load(preset.read_text())["model"]
    config = dataclasses.replace(ModelConfig(**fields), n_layers=layers, max_seq_len=max_seq_len)
    latent = Transformer(config, nnx.Rngs(0))
    variants = {"bf16": _bf16_everywhere(freeze_weights(latent))} if "bf16" in names else {}
    for layout in (n for n in ("2bit", "1.6bit") if n in names):
        t0 = time.perf_counter()
        packed, kept = pack_model(latent, layout)
        print(
            f"packed {layout} in {time.perf_counter() - t0:.1f} s; float: {sorted(kept)}",
            flush=True,
        )
        variants[layout] = _bf16_everywhere(packed)
    return config, variants


_T_COLUMN = {"auto": "auto", "on": "yes", "off": "no"}
"""Column ``T`` for each ``--transposed`` mode."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", type=Path, default=ROOT / "configs/models/spectra-3.9b.yaml")
    ap.add_argument("--layers", type=int, default=8, help="blocks of the preset to build")
    ap.add_argument("--batch", default="1,16", help="comma-separated batch sizes")
    ap.add_argument("--tokens", default="32,160", help="the two generation lengths")
    ap.add_argument(
        "--fuse",
        default="on",
        help="comma-separated: on (q|k|v and gate|up one matmul each, as generate does), off",
    )
    ap.add_argument("--variants", default="bf16,2bit,1.6bit", help="comma-separated weights")
    ap.add_argument(
        "--transposed",
        default="auto",
        help="comma-separated among auto, on, off: packed linears also hold their bytes "
        "transposed (the Mosaic kernel's operand); auto: as generate decides for the batch",
    )
    args = ap.parse_args(argv)
    short, long = (int(v) for v in args.tokens.split(","))
    fuses = [{"on": True, "off": False}[v] for v in args.fuse.split(",")]
    modes = args.transposed.split(",")
    if not set(modes) <= {"auto", "on", "off"}:
        ap.error(f"--transposed {args.transposed}: expected auto, on or off, comma-separated")
    dev = jax.devices()[0]
    print(f"device {dev.device_kind}, jax {jax.__version__}", flush=True)
    config, variants = build_variants(
        args.preset, args.layers, 16 + long, tuple(args.variants.split(","))
    )
    print(f"{config.name} shapes, {config.n_layers} layers", flush=True)
    print(
        f"{'weights':8s} {'fused':>5s} {'T':>4s} {'batch':>5s} {'ms/token':>9s} {'tokens/s':>9s} "
        f"{'speedup':>8s} {'MB/token':>9s} {'GB/s':>7s} {'host ms':>8s}"
    )
    for batch in (int(v) for v in args.batch.split(",")):
        base = None  # the first row of the batch: bf16, fused as listed first
        for fuse in fuses:
            runs = [
                (name, model, "off" if name == "bf16" else mode)
                for mode in modes
                for name, model in variants.items()
                if mode != "auto"
                or name == "bf16"
                or wants_transposed_packed(batch, block_linear_shapes(model.config, fuse), name)
            ]
            for name, model, mode in dict.fromkeys(runs):
                transposed = mosaic_linears(batch) if mode == "auto" else mode == "on"
                t, cpu = seconds_per_token(model, batch, short, long, fuse, transposed)
                base = base or t
                mb = _weight_bytes(model) / 1e6
                print(
                    f"{name:8s} {'yes' if fuse else 'no':>5s} {_T_COLUMN[mode]:>4s} "
                    f"{batch:5d} {t * 1e3:9.3f} "
                    f"{batch / t:9.1f} {base / t:8.2f} {mb:9.1f} {mb / 1e3 / t:7.0f} "
                    f"{cpu * 1e3:8.3f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
