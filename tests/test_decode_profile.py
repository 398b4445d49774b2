"""benchmarks/decode_profile.py's trace arithmetic on a hand-made Perfetto trace."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def decode_profile():
    spec = importlib.util.spec_from_file_location(
        "decode_profile", ROOT / "benchmarks/decode_profile.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _trace() -> dict:
    meta = [
        {"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "/host:CPU"}},
        {"ph": "M", "pid": 2, "name": "process_name", "args": {"name": "/device:GPU:0"}},
        {"ph": "M", "pid": 2, "tid": 7, "name": "thread_name", "args": {"name": "Stream #13"}},
        {"ph": "M", "pid": 2, "tid": 8, "name": "thread_name", "args": {"name": "XLA Ops"}},
    ]
    kernels = [  # on the stream: [0, 10) ternary, [5, 12) gemm (overlaps), [20, 24) fusion
        {"ph": "X", "pid": 2, "tid": 7, "ts": 0, "dur": 10, "name": "ternary_gemv_2bit"},
        {"ph": "X", "pid": 2, "tid": 7, "ts": 5, "dur": 7, "name": "sm90_xmma_gemm_bf16"},
        {"ph": "X", "pid": 2, "tid": 7, "ts": 20, "dur": 4, "name": "loop_add_fusion"},
        {"ph": "X", "pid": 2, "tid": 7, "ts": 30, "dur": 50, "name": "Memcpy DtoH"},
    ]
    repeats = [  # derived lines and host events: not kernels
        {"ph": "X", "pid": 2, "tid": 8, "ts": 0, "dur": 24, "name": "fusion.3"},
        {"ph": "X", "pid": 1, "tid": 3, "ts": 0, "dur": 99, "name": "PjitFunction"},
    ]
    return {"traceEvents": meta + kernels + repeats}


def test_kernel_time_per_token_from_a_trace(decode_profile):
    kernels, seen = decode_profile.device_kernel_events(_trace())
    assert [k["name"] for k in kernels] == [
        "ternary_gemv_2bit",
        "sm90_xmma_gemm_bf16",
        "loop_add_fusion",
    ]
    assert seen == ["/device:GPU:0 / Stream #13", "/device:GPU:0 / XLA Ops"]
    r = decode_profile.summarize(kernels, tokens=2)
    # busy = [0, 12) + [20, 24) = 16 us over 2 tokens; span 24 us; idle 8 / 24
    assert r["kernels"] == 1.5
    assert r["busy_us"] == pytest.approx(8.0)
    assert r["span_us"] == pytest.approx(12.0)
    assert r["idle"] == pytest.approx(1 / 3)
    assert (r["ternary_us"], r["gemm_us"], r["other_us"]) == (5.0, 3.5, 2.0)
