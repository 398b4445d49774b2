"""The kernel benchmark scripts' helpers: the ``--configs`` reader of benchmarks/kernels.py, the
SASS summary of benchmarks/triton_sass.py (on a hand-written listing, no GPU or Triton needed),
the int8-MMA kernel of benchmarks/imma_probe.py (interpret mode, against float64) and the trace
reading of benchmarks/gpu_timeline.py (on a hand-written trace)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from kernels_pallas import layouts
from kernels_pallas.triton_matmul import BlockConfig

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building the class
    spec.loader.exec_module(module)
    return module


def test_listed_configs_apply_from_current_and_reject_unknown_keys(tmp_path: Path) -> None:
    kernels = _load("kernels")
    path = tmp_path / "c.json"
    path.write_text(json.dumps([{"from_current": True, "block_k": 16}, {"block_n": 64}]))
    current = BlockConfig(block_n=256, block_k=32, split_k=10, gemv=True)
    got = kernels.listed_configs(kernels.read_listed(path), current)
    assert got == [current.replace(block_k=16), BlockConfig(block_n=64)]

    path.write_text(json.dumps([{"blok_k": 3}]))
    with pytest.raises(SystemExit, match=r"c\.json: entry 0 has unknown keys \['blok_k'\]"):
        kernels.read_listed(path)
    path.write_text("{not json")
    with pytest.raises(SystemExit, match="cannot read a JSON list"):
        kernels.read_listed(path)


SASS = """
        /*0000*/                   MOV R1, c[0x0][0x28] ;
        /*0010*/                   LOP3.LUT R2, R3, 0x3, RZ, 0xc0, !PT ;
        /*0020*/                   HGMMA.64x16x16.F32.BF16 R24, R32, gdesc[UR12], R24 ;
        /*0030*/                   HGMMA.64x16x16.F32.BF16 R24, R36, gdesc[UR16], R24, gsb0 ;
        /*0040*/                   WARPGROUP.DEPBAR.LE gsb0, 0x0 ;
        /*0050*/                   FFMA R4, R5, R6, R4 ;
        /*0060*/               @P0 FFMA R7, R5, R6, R7 ;
        /*0070*/               @P1 BRA 0x20 ;
        /*0080*/                   WARPGROUP.DEPBAR.LE gsb0, 0x7 ;
        /*0090*/              @!P2 BRA 0x50 ;
        /*00a0*/                   EXIT ;
        /*00b0*/                   BRA 0xb0;
"""


def test_sass_summary_finds_the_widest_loop_and_the_wgmma_waits() -> None:
    summary = _load("triton_sass").summarise(SASS)
    # the loop 0x20..0x70 (6 instructions) is wider than 0x50..0x90; BRA 0xb0 is not backward
    assert summary.loop_instructions == 6
    assert summary.loop_mix == {"HGMMA": 2, "WARPGROUP": 1, "FFMA": 2, "BRA": 1}
    assert summary.wgmma == 2
    assert summary.wgmma_waits == [0, 7]


@pytest.mark.parametrize("layout", ["2bit", "1.6bit"])
@pytest.mark.parametrize("n_major", [False, True])
def test_imma_probe_kernel_matches_float64(layout: str, n_major: bool) -> None:
    """The probe's integer arithmetic (x split into int16 high and low bytes, 1.6-bit bytes
    m_j - 128 against x'_j, the offsets cancelling) is as exact as the bf16 reference: ragged M,
    split-K, an outlier in x."""
    import jax.numpy as jnp
    import numpy as np

    from kernels_pallas import layouts

    probe = _load("imma_probe")
    rng = np.random.default_rng(3)
    m, k, n = 5, 1280, 256
    trits = rng.integers(-1, 2, (k, n)).astype(np.int8)
    x = rng.standard_normal((m, k)).astype(np.float32)
    x[1, 7] = 20.0
    xb = jnp.asarray(x, jnp.bfloat16)
    packed = layouts.pack(trits, layout)
    w = jnp.asarray(packed.T.copy() if n_major else packed)
    cfg = BlockConfig(block_m=16, block_n=128, block_k=32, split_k=3)
    got = np.asarray(probe.imma_matmul(xb, w, 0.25, layout, cfg, n_major, True), np.float64)
    want = np.asarray(xb, np.float64) @ (0.25 * trits.astype(np.float64))
    bf16_ref = np.asarray(jnp.asarray(want, jnp.bfloat16), np.float64)  # the output's rounding
    err = np.linalg.norm(got - want) / np.linalg.norm(want)
    assert err <= 1.2 * np.linalg.norm(bf16_ref - want) / np.linalg.norm(want) + 1e-6


def test_table_row_gives_times_speedups_and_bytes_a_second() -> None:
    """bf16: 2 * 1024 * 4096 bytes in 20 us = 0.42 TB/s; 2-bit: 1.3e12 B/s = 1.30 TB/s, 43% of a
    3e12 copy, and cuBLAS on its bytes in 8 us: a 2.5x ceiling; 1.6-bit failed every
    configuration (no byte-matched time: '-')."""
    kernels = _load("kernels")
    row = {
        "k": 1024,
        "n": 4096,
        "m": 16,
        "bf16_s": 20e-6,
        "2bit_s": 5e-6,
        "2bit_speedup": 4.0,
        "2bit_bytes_per_s": 1.3e12,
        "2bit_matched_s": 8e-6,
        "1p6bit_tried": [{"error": "x"}],
    }
    line = kernels._fmt_row(row, 3e12)
    fields = line.replace("|", " ").split()
    assert fields == [
        "1024x4096",
        "16",
        "20.0",
        "0.42",
        "5.0",
        "4.00",
        "1.30",
        "43",
        "2.50",
        "fail",
        "-",
    ]
    bars = [[i for i, c in enumerate(text) if c == "|"] for text in (kernels._HEADER, line)]
    assert bars[0] == bars[1] and len(bars[0]) == 3  # the columns line up under the header


def test_byte_matched_matrix_holds_the_packed_bytes() -> None:
    """8192 x 28672: 2-bit packs 2048 rows (N / 8 bf16 columns exactly); 1.6-bit 1664 rows
    (ceil(8192 / 5) padded to a multiple of 64) of 28672 bytes = 2912 bf16 columns of 8192 rows;
    a few bytes still make one column."""
    kernels = _load("kernels")
    k, n = 8192, 28672
    assert kernels.byte_matched_columns(k, layouts.rows_per_plane(k, "2bit") * n) == n // 8
    assert layouts.rows_per_plane(k, "1.6bit") == 1664
    assert kernels.byte_matched_columns(k, 1664 * n) == 2912
    assert kernels.byte_matched_columns(k, 1639 * n) == 2868  # rounded: 2868.3
    assert kernels.byte_matched_columns(8192, 100) == 1


def test_read_probe_sums_the_words_it_reads() -> None:
    """The read probe's tiled Pallas read (interpret mode) gives numpy's column sums of the int32
    words: 8-row steps over 2 column tiles (split-K 2 for 4 SMs at one program an SM, 4 steps
    a program), and 32-row steps, one a program (split-K 2 over the 64 rows)."""
    probe = _load("read_probe")
    probe.INTERPRET = True
    rng = np.random.default_rng(5)
    words = rng.integers(-(2**20), 2**20, (64, 128), dtype=np.int32)
    want = words.astype(np.int64).sum(axis=0)
    for tile in (probe.Tile(8, 256, per_sm=1), probe.Tile(32, 512, per_sm=1000)):
        sums, split = probe.read_sum(jnp.asarray(words), tile, sms=4)
        np.testing.assert_array_equal(np.asarray(sums, np.int64), want)
        assert split == 2


def test_fit_mosaic_keeps_int8_steps_at_64_packed_rows_or_more() -> None:
    """``fit_mosaic`` halves block_k until it divides R, but the s8 tiling stops at 64 (no s8
    register operand at 32): 1.6-bit K = 2048 has R = 416, which only 32 divides."""
    from kernels_pallas.mosaic_matmul import MosaicConfig

    kernels = _load("kernels")
    bf16 = kernels.fit_mosaic(MosaicConfig(128, 128, 2, 2), "1.6bit", 2048, 512)
    assert bf16 is not None and bf16.block_k == 32 and 416 // 32 % bf16.split_k == 0
    assert kernels.fit_mosaic(MosaicConfig(128, 128, 2, 2, int8=True), "1.6bit", 2048, 512) is None
    s8 = kernels.fit_mosaic(MosaicConfig(128, 128, 0, 2, int8=True), "1.6bit", 2560, 512)
    assert s8.block_k == 128 and s8.int8 and 512 // 128 % s8.split_k == 0


def test_gpu_timeline_reads_the_gpu_streams_of_a_trace(tmp_path: Path) -> None:
    """benchmarks/gpu_timeline.py on a hand-written perfetto trace: only the GPU process's
    stream threads count, and a call's span and busy time are the events' own arithmetic."""
    import gzip

    timeline = _load("gpu_timeline")
    meta = [
        {"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "/host:CPU"}},
        {"ph": "M", "pid": 2, "name": "process_name", "args": {"name": "/device:GPU:0"}},
        {"ph": "M", "pid": 2, "tid": 7, "name": "thread_name", "args": {"name": "Stream #13"}},
        {"ph": "M", "pid": 2, "tid": 8, "name": "thread_name", "args": {"name": "XLA Ops"}},
        {"ph": "M", "pid": 1, "tid": 7, "name": "thread_name", "args": {"name": "Stream #13"}},
    ]
    kernels = [  # two calls of a 3 us preparation and a 20 us kernel, 1 us apart
        {"ph": "X", "pid": 2, "tid": 7, "ts": t0 + dt, "dur": dur, "name": name}
        for t0 in (100.0, 130.0)
        for dt, dur, name in ((0.0, 3.0, "prep"), (4.0, 20.0, "kernel"))
    ]
    noise = [  # the same names on the host and on the GPU's op line: not kernels
        {"ph": "X", "pid": 1, "tid": 7, "ts": 50.0, "dur": 500.0, "name": "kernel"},
        {"ph": "X", "pid": 2, "tid": 8, "ts": 100.0, "dur": 54.0, "name": "kernel"},
        {"ph": "X", "pid": 2, "tid": 7, "ts": 140.0, "dur": 0, "name": "marker"},
    ]
    run = tmp_path / "plugins" / "profile" / "run"
    run.mkdir(parents=True)
    with gzip.open(run / "perfetto_trace.json.gz", "wt") as f:
        json.dump({"traceEvents": meta + kernels + noise}, f)

    events = timeline.gpu_kernel_events(str(tmp_path))
    assert sorted(e["ts"] for e in events) == [100.0, 104.0, 130.0, 134.0]
    t = timeline.timeline(events, calls=2)
    assert t["span"] == pytest.approx((154.0 - 100.0) / 2)
    assert t["busy"] == pytest.approx(23.0)
    assert t["kernels"] == {"kernel": (1.0, 20.0), "prep": (1.0, 3.0)}
    assert list(t["kernels"]) == ["kernel", "prep"]  # the largest share first


def test_gpu_timeline_served_variant_takes_both_orientations() -> None:
    """``served`` calls ``ternary_matmul`` with the packed bytes and their transposed copy (on a
    CPU the reference path, which must give the float64 product); unknown names are refused."""
    timeline = _load("gpu_timeline")
    rng = np.random.default_rng(3)
    k, n = 256, 128
    trits = rng.integers(-1, 2, (k, n)).astype(np.int8)
    packed = jnp.asarray(layouts.pack(trits, "2bit"))
    x = jnp.asarray(rng.standard_normal((3, k)), jnp.bfloat16)
    fn, operand = timeline.variant_fn("served", "2bit")
    assert operand == "both"
    got = np.asarray(fn(x, (packed, packed.T)), np.float64)
    want = np.asarray(x, np.float64) @ (0.5 * trits.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-2 * np.abs(want).max())
    with pytest.raises(ValueError, match="expected bf16, shipped, served"):
        timeline.variant_fn("servd", "2bit")


@pytest.mark.parametrize("layout", ["2bit", "1.6bit"])
def test_gpu_timeline_probes_cut_the_s8_step_down(layout: str) -> None:
    """The ``probe-KIND`` variants lower (on the CPU, for the GPU) to the s8 kernel with its
    step cut down as ``PROBES`` says: ``tma`` without a ``wgmma``, ``one`` and ``raw`` with
    ``wgmma``s on the raw bytes (an identity block of one output, or of one a plane, and none
    of the decode's instructions), the full kernel with them; the patches do not outlive the
    tracing; tilings the probes do not cut are refused."""
    import jax
    import jax.experimental.pallas.mosaic_gpu as plgpu

    from kernels_pallas import mosaic_matmul as mm

    timeline = _load("gpu_timeline")
    k = {"2bit": 2048, "1.6bit": 2560}[layout]
    n, rows, planes = 512, 512, layouts.TRITS_PER_BYTE[layout]
    decode_op = {"2bit": "and.b32", "1.6bit": "mul.lo.u32"}[layout]
    load, decode_fn = plgpu.load, mm._int8_decode_fn
    texts = {}
    for kind in ("probe-tma", "probe-one", "probe-raw", "mosaic"):
        fn, operand = timeline.variant_fn(f"{kind}:128/128/1/2/1/0/1", layout)
        assert operand == "packed_t"
        texts[kind] = (
            jax.jit(fn)
            .trace(
                jax.ShapeDtypeStruct((1, k), jnp.bfloat16),
                jax.ShapeDtypeStruct((n, rows), jnp.uint8),
            )
            .lower(lowering_platforms=("cuda",))
            .as_text()
        )
    assert plgpu.load is load and mm._int8_decode_fn is decode_fn
    assert "wgmma.mma_async" not in texts["probe-tma"]
    for kind, outs in (("probe-one", 1), ("probe-raw", planes)):
        text = texts[kind]
        assert "wgmma.mma_async" in text and decode_op not in text
        assert f"mov.b32 ${outs - 1}, ${outs};" in text and f"mov.b32 ${outs}, " not in text
    assert "wgmma.mma_async" in texts["mosaic"] and decode_op in texts["mosaic"]
    with pytest.raises(ValueError, match="in_flight 0"):
        timeline.variant_fn("probe-raw:128/128/1/3/1/1/1", layout)
    with pytest.raises(ValueError, match="expected one of"):
        timeline.variant_fn("probe-decode:128/128/1/2/1/0/1", layout)


@pytest.mark.parametrize("layout", ["2bit", "1.6bit"])
def test_gpu_timeline_x_in_kernel_probes_drop_a_part_of_the_prologue(layout: str) -> None:
    """``probe-xpro`` and ``probe-xstep`` lower (on the CPU, for the GPU) to one kernel each,
    each unlike the full x_in_kernel kernel and unlike the other (the prologue's x and its
    quantization dropped while tracing), and the patches do not outlive the tracing."""
    import jax

    from kernels_pallas import mosaic_matmul as mm

    timeline = _load("gpu_timeline")
    k = {"2bit": 2048, "1.6bit": 2560}[layout]
    rows = layouts.rows_per_plane(k, layout)
    prologue, quantize = mm._x_prologue, mm._x_store_fn
    texts = {}
    for kind in ("probe-xpro", "probe-xstep", "mosaic"):
        fn, _ = timeline.variant_fn(f"{kind}:128/128/1/2/1/0/1/1", layout)
        text = (
            jax.jit(fn)
            .trace(
                jax.ShapeDtypeStruct((1, k), jnp.bfloat16),
                jax.ShapeDtypeStruct((512, rows), jnp.uint8),
            )
            .lower(lowering_platforms=("cuda",))
            .as_text()
        )
        calls = [line for line in text.splitlines() if "custom_call @" in line]
        assert len(calls) == 1 and "mosaic_gpu" in calls[0]
        texts[kind] = calls[0]
    assert mm._x_prologue is prologue and mm._x_store_fn is quantize
    assert len(set(texts.values())) == 3


def test_gpu_timeline_watchdog_fires_only_on_an_overrun() -> None:
    """``watchdog``: the expiry call runs (from its own thread) when the body outlasts the
    limit, and not when the body ends in time or the limit is 0."""
    timeline = _load("gpu_timeline")
    fired = threading.Event()
    with timeline.watchdog(0.05, fired.set):
        time.sleep(0.3)
    assert fired.wait(1.0)
    fired.clear()
    for limit in (5.0, 0.0):
        with timeline.watchdog(limit, fired.set):
            pass
    time.sleep(0.1)
    assert not fired.is_set()


def test_gpu_timeline_ends_a_stuck_point_with_what_it_measured(tmp_path: Path) -> None:
    """A point that outlasts ``--point-seconds`` ends the run with exit status 3, a line naming
    the point, and the JSON (``--out``) listing it as stuck (here on the CPU, where a limit of
    10 ms stops the first point in its compile)."""
    out = tmp_path / "t.json"
    script = BENCHMARKS / "gpu_timeline.py"
    args = ["--shapes", "256x256", "--ms", "1", "--variants", "bf16", "--no-copy-bw"]
    done = subprocess.run(
        [sys.executable, str(script), *args, "--point-seconds", "0.01", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "point 256x256 bf16 M=1 bf16 did not finish in 0.01 s" in done.stdout
    record = json.loads(out.read_text())
    assert record["stuck"] == ["256x256 bf16 M=1 bf16"] and record["points"] == []


def test_gpu_timeline_speedups_pair_each_point_with_its_bf16() -> None:
    """``speedups``: every variant's point against the bf16 point of the same shape and M, on
    the GPU's clock (busy) and on the wall clock; points without a bf16 twin are left out."""
    timeline = _load("gpu_timeline")

    def point(k, m, variant, busy, wall, layout="2bit"):
        return dict(k=k, n=256, m=m, variant=variant, layout=layout, busy=busy, wall=wall)

    points = [
        point(512, 1, "bf16", 100.0, 110.0, "bf16"),
        point(512, 1, "served", 25.0, 40.0),
        point(512, 1, "served", 20.0, 22.0, "1.6bit"),
        point(512, 16, "served", 30.0, 30.0),  # no bf16 at M = 16
        point(1024, 1, "bf16", 50.0, 60.0, "bf16"),
        point(1024, 1, "shipped", 40.0, 80.0),
    ]
    rows = timeline.speedups(points)
    got = [(r["k"], r["m"], r["layout"], r["busy_speedup"], r["wall_speedup"]) for r in rows]
    assert got == [
        (512, 1, "2bit", 4.0, 2.75),
        (512, 1, "1.6bit", 5.0, 5.0),
        (1024, 1, "2bit", 1.25, 0.75),
    ]
    assert rows[0]["bf16_busy"] == 100.0 and rows[2]["bf16_wall"] == 60.0
    # bytes a call: packed 2-bit 512 x 256 is 128 x 256 bytes, bf16 2 x 512 x 256; x and out
    moved_2bit = 128 * 256 + 2 * 512 + 2 * 256
    moved_bf16 = 2 * 512 * 256 + 2 * 512 + 2 * 256
    rows = timeline.speedups(points, copy_bytes_per_s=4e9)
    assert rows[0]["bytes_per_s"] == pytest.approx(moved_2bit / 25e-6)
    assert rows[0]["bf16_bytes_per_s"] == pytest.approx(moved_bf16 / 100e-6)
    assert rows[0]["copy_share"] == pytest.approx(moved_2bit / 25e-6 / 4e9)
    assert np.isnan(timeline.speedups(points)[0]["copy_share"])  # no bandwidth measured


def test_gpu_timeline_runs_several_shapes_and_writes_json(tmp_path: Path, capsys) -> None:
    """``main`` on the CPU (no GPU streams in the trace, so no busy times): bf16 once a shape
    and M, each layout's variants after it, every point in the JSON, a misspelt variant refused
    before any weights are made."""
    timeline = _load("gpu_timeline")
    out = tmp_path / "t.json"
    args = ["--ms", "1,2", "--layouts", "2bit,1.6bit", "--sets", "2", "--reps", "1"]
    args += ["--repeats", "1", "--wall-repeats", "1", "--no-copy-bw", "--out", str(out)]
    assert timeline.main(["--shapes", "512x256,256x512", "--variants", "bf16,shipped", *args]) == 0
    points = json.loads(out.read_text())["points"]
    keys = [(p["k"], p["n"], p["m"], p["layout"], p["variant"]) for p in points]
    assert keys == [
        (k, n, m, layout, variant)
        for k, n in ((512, 256), (256, 512))
        for m in (1, 2)
        for layout, variant in (("bf16", "bf16"), ("2bit", "shipped"), ("1.6bit", "shipped"))
    ]
    assert all(p["wall"] > 0 and p["host"] > 0 for p in points)
    assert "speedup (GPU clock)" in capsys.readouterr().out
    with pytest.raises(ValueError, match="expected bf16, shipped"):
        timeline.main(["--variants", "bf16,servd", *args])
    with pytest.raises(SystemExit):
        timeline.main(["--presets", "large,huge", *args])
    assert "unknown ['huge']" in capsys.readouterr().err
    capsys.readouterr()
    assert timeline.main(["--presets", "tiny", "--variants", "shipped", *args]) == 0
    assert [(p["k"], p["n"]) for p in json.loads(out.read_text())["points"]] == [(512, 256)] * 4
    capsys.readouterr()
    # a spent budget: the points are named, not run
    budget = ["--shapes", "512x256", "--variants", "bf16,shipped", "--budget-seconds", "1e-9"]
    assert timeline.main([*budget, *args]) == 0
    record = json.loads(out.read_text())
    assert record["points"] == [] and len(record["not_run"]) == 6
    assert "6 points not run, from 512x256 bf16 M=1 bf16" in capsys.readouterr().out
