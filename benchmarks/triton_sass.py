"""Read a kernel's SASS without a GPU: lower one ``ternary_matmul_pallas`` launch on the CPU,
compile its Triton IR for sm_90a with a pip-installed Triton, and summarise the machine code.

Prints the registers and stack a thread uses, the main loop's instructions per weight and its
instruction mix, and the ``wgmma`` waits (``WARPGROUP.DEPBAR.LE gsb0, N``: N = 0 after a
``wgmma`` means the warps stop until it finishes). ``--keep DIR`` keeps the TTIR, TTGIR, PTX and
SASS. Used in docs/benchmarks.md to count instructions per weight before spending GPU time.

Caveats, measured: XLA compiles Pallas' Triton IR with its own Triton build, so the GPU's code
can differ from this one (one accumulator per plane gave asynchronous ``wgmma`` here and was 1.5-2x
slower on the H100 with jax 0.11.2). The instruction counts of the CUDA-core kernel and of the
chained ``wgmma`` waits matched the GPU's own SASS (ncu) where both were read.

Needs Triton (``pip install triton``; not a dependency of trilm-jax, and it may live in another
environment: ``--triton-python PATH``). The IR is captured through a private jax function
(``lower_jaxpr_to_triton_module``), so a jax upgrade may need this script to follow.

    python benchmarks/triton_sass.py --layout 2bit --m 1 --k 8192 --n 28672 \\
        --config '{"block_n": 256, "block_k": 32, "split_k": 10, "gemv": true}'
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_COMPILE = r"""
import os, sys
import triton
from triton._C.libtriton import ir, passes
from triton.backends.compiler import GPUTarget
from triton.compiler.compiler import make_backend
src, warps, stages, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
target = GPUTarget("cuda", 90, 32)
backend = make_backend(target)
ctx = ir.context(); ir.load_dialects(ctx); backend.load_dialects(ctx)
mod = ir.parse_mlir_module(src, ctx)
pm = ir.pass_manager(ctx)  # the TTIR clean-up XLA also runs (combine folds acc + dot)
passes.common.add_inliner(pm); passes.common.add_canonicalizer(pm); passes.ttir.add_combine(pm)
passes.ttir.add_reorder_broadcast(pm); passes.common.add_cse(pm); passes.common.add_symbol_dce(pm)
passes.ttir.add_loop_unroll(pm)
pm.run(mod, "trilm")
ttir = os.path.join(out, "kernel.ttir")
open(ttir, "w").write(str(mod))
k = triton.compile(ttir, target=target, options=dict(num_warps=warps, num_stages=stages))
for key in ("ttgir", "ptx"):
    open(os.path.join(out, "kernel." + key), "w").write(k.asm[key])
open(os.path.join(out, "kernel.cubin"), "wb").write(k.asm["cubin"])
bindir = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
print(os.path.join(bindir, "cuobjdump"))
"""

_LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")


@dataclass
class SassSummary:
    """What :func:`summarise` reads from ``cuobjdump -sass`` text."""

    loop_instructions: int = 0
    loop_mix: Counter = field(default_factory=Counter)
    wgmma: int = 0
    wgmma_waits: list[int] = field(default_factory=list)


def _opcode(text: str) -> str:
    text = re.sub(r"^@!?U?P\w+\s+", "", text)  # predicate
    return text.split()[0].split(".")[0]


def summarise(sass: str) -> SassSummary:
    """The largest loop (the widest backward branch), its instruction count and opcode mix, and
    every ``wgmma`` (HGMMA) with its waits."""
    instructions = [(int(m.group(1), 16), m.group(2)) for m in _LINE.finditer(sass)]
    out = SassSummary()
    span = None
    for addr, text in instructions:
        m = re.search(r"\bBRA\s+(0x[0-9a-f]+)", text)
        if m and int(m.group(1), 16) < addr:
            start = int(m.group(1), 16)
            if span is None or addr - start > span[1] - span[0]:
                span = (start, addr)
    if span is not None:
        body = [text for addr, text in instructions if span[0] <= addr <= span[1]]
        out.loop_instructions = len(body)
        out.loop_mix = Counter(_opcode(t) for t in body)
    for _, text in instructions:
        op = _opcode(text)
        if op == "HGMMA":
            out.wgmma += 1
        elif op == "WARPGROUP" and "DEPBAR" in text:
            out.wgmma_waits.append(int(text.rsplit(",", 1)[1].strip(), 0))
    return out


def lower_to_ttir(layout: str, m: int, k: int, n: int, config: dict) -> tuple[str, object]:
    """The Triton IR (text) of one launch, lowered on this machine's CPU, and its BlockConfig."""
    import jax
    import jax.numpy as jnp
    from jax._src.pallas.triton import pallas_call_registration as registration

    from kernels_pallas import layouts
    from kernels_pallas.triton_matmul import BlockConfig, ternary_matmul_pallas

    cfg = BlockConfig(**config)
    captured: list[str] = []
    original = registration.lowering.lower_jaxpr_to_triton_module

    def capture(*args, **kwargs):
        result = original(*args, **kwargs)
        captured.append(result.module.operation.get_asm(enable_debug_info=False))
        return result

    registration.lowering.lower_jaxpr_to_triton_module = capture
    try:
        x = jax.ShapeDtypeStruct((m, k), jnp.bfloat16)
        packed = jax.ShapeDtypeStruct(layouts.packed_shape(k, n, layout), jnp.uint8)
        scale = jax.ShapeDtypeStruct((), jnp.float32)
        jax.jit(lambda x, p, s: ternary_matmul_pallas(x, p, s, layout=layout, config=cfg)).trace(
            x, packed, scale
        ).lower(lowering_platforms=("cuda",))
    finally:
        registration.lowering.lower_jaxpr_to_triton_module = original
    if len(captured) != 1:
        raise RuntimeError(f"expected one Pallas kernel in the launch, captured {len(captured)}")
    return captured[0], cfg


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layout", default="2bit", choices=("2bit", "1.6bit"))
    ap.add_argument("--m", type=int, default=1, help="rows of x")
    ap.add_argument("--k", type=int, default=8192, help="input features")
    ap.add_argument("--n", type=int, default=8192, help="output features")
    ap.add_argument("--config", default="{}", help="BlockConfig fields as a JSON object")
    ap.add_argument(
        "--triton-python",
        default=sys.executable,
        help="a Python with `triton` installed (default: this one)",
    )
    ap.add_argument("--keep", type=Path, default=None, help="keep TTIR/TTGIR/PTX/SASS here")
    args = ap.parse_args(argv)
    try:
        config = json.loads(args.config)
    except json.JSONDecodeError as e:
        ap.error(f"--config is not a JSON object: {e}")
    ttir, cfg = lower_to_ttir(args.layout, args.m, args.k, args.n, config)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        (work / "pallas.ttir").write_text(ttir)
        run = subprocess.run(
            [args.triton_python, "-c", _COMPILE, str(work / "pallas.ttir")]
            + [str(cfg.num_warps), str(cfg.num_stages), str(work)],
            capture_output=True,
            text=True,
            env={**os.environ, "TRITON_DEFAULT_FP_FUSION": "1"},
        )
        if run.returncode:
            tail = run.stderr.strip().splitlines()[-3:]
            raise SystemExit(
                f"compiling with {args.triton_python} failed (is triton installed there? "
                f"`pip install triton`):\n" + "\n".join(tail)
            )
        cuobjdump = run.stdout.strip().splitlines()[-1]
        cubin = str(work / "kernel.cubin")
        sass = subprocess.run([cuobjdump, "-sass", cubin], capture_output=True, text=True).stdout
        usage = subprocess.run(
            [cuobjdump, "-res-usage", cubin], capture_output=True, text=True
        ).stdout
        (work / "kernel.sass").write_text(sass)
    summary = summarise(sass)
    planes = 4 if args.layout == "2bit" else 5
    weights = cfg.block_k * cfg.block_n * planes / (cfg.num_warps * 32)
    regs = re.search(r"REG:(\d+)", usage)
    stack = re.search(r"STACK:(\d+)", usage)
    print(f"{args.layout} M={args.m} K={args.k} N={args.n} {cfg}")
    print(f"registers {regs.group(1) if regs else '?'}, stack {stack.group(1) if stack else '?'} B")
    print(
        f"main loop: {summary.loop_instructions} instructions for {weights:.0f} weights a thread "
        f"= {summary.loop_instructions / weights:.2f} a weight"
    )
    print("mix:", ", ".join(f"{op} {c}" for op, c in summary.loop_mix.most_common(10)))
    print(f"wgmma: {summary.wgmma}, waits (DEPBAR.LE N): {summary.wgmma_waits}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
