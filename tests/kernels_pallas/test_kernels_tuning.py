"""The per-device table of measured block configurations (kernels_pallas/tuning.py)."""

from __future__ import annotations

import json

import pytest

from kernels_pallas import layouts
from kernels_pallas.triton_matmul import BlockConfig, _check_config, preferred_config
from kernels_pallas.tuning import (
    TUNED_DIR,
    merge_tables,
    table_from_benchmark,
    table_path,
    tuned_config,
)


def _row(m, k, n, split_2bit, tried=3):
    cfg = BlockConfig(block_m=16 if m <= 16 else 64, split_k=split_2bit).__dict__
    return {
        "m": m,
        "k": k,
        "n": n,
        "2bit_config": cfg,
        "2bit_tried": [{}] * tried,
        "1p6bit_config": cfg,
        "1p6bit_tried": [{}],  # one candidate: not tuned, left out of the table
    }


@pytest.fixture
def table_dir(tmp_path):
    result = {
        "device": "Test GPU 80GB",
        "date": "2026-11-22",
        "jax": "0.0",
        "rows": [_row(1, 1024, 512, 3), _row(4, 1024, 512, 5), _row(64, 1024, 512, 7)],
    }
    table = table_from_benchmark(result)
    assert [e["layout"] for e in table["entries"]] == ["2bit"] * 3
    path = table_path(result["device"], tmp_path)
    assert path.name == "test-gpu-80gb.json"
    path.write_text(json.dumps(table))
    return tmp_path


@pytest.mark.parametrize(
    ("m", "split_k"), [(1, 3), (2, 5), (4, 5), (5, None), (16, None), (17, 7), (64, 7), (65, None)]
)
def test_lookup_takes_the_nearest_measured_m_above_on_the_same_side_of_16(table_dir, m, split_k):
    got = tuned_config("2bit", m, 1024, 512, "Test GPU 80GB", table_dir)
    assert (got.split_k if got else None) == split_k


def test_lookup_misses_other_shapes_layouts_and_devices(table_dir):
    assert tuned_config("2bit", 1, 2048, 512, "Test GPU 80GB", table_dir) is None
    assert tuned_config("1.6bit", 1, 1024, 512, "Test GPU 80GB", table_dir) is None
    assert tuned_config("2bit", 1, 1024, 512, "Other GPU", table_dir) is None


def test_shipped_tables_hold_valid_configs_for_their_shapes():
    tables = sorted(TUNED_DIR.glob("*.json"))
    assert tables, f"no tuned table in {TUNED_DIR}"
    for path in tables:
        table = json.loads(path.read_text())
        assert path == table_path(table["device"])
        for e in table["entries"]:
            cfg = BlockConfig(**e["config"])
            rows = layouts.rows_per_plane(e["k"], e["layout"])
            _check_config(cfg, e["m"], e["n"], rows)  # raises ValueError if impossible
            assert cfg.block_m == (16 if e["m"] <= 16 else 64)
            found = tuned_config(e["layout"], e["m"], e["k"], e["n"], table["device"])
            assert found == cfg


def test_cpu_uses_the_rules():
    from kernels_pallas.triton_matmul import default_config

    assert preferred_config("2bit", 1, 8192, 28672) == default_config("2bit", 1, 8192, 28672)


def test_a_new_measurement_replaces_its_points_and_keeps_the_others():
    def table(date, rows):
        result = {"device": "Test GPU 80GB", "date": date, "jax": "0.0", "rows": rows}
        return table_from_benchmark(result)

    old = table("2026-11-22", [_row(1, 1024, 512, 3), _row(16, 1024, 512, 5)])
    new = table("2026-11-24", [_row(1, 1024, 512, 9), _row(1, 3072, 9216, 4)])
    merged = merge_tables(old, new)
    got = {(e["m"], e["k"], e["n"]): e["config"]["split_k"] for e in merged["entries"]}
    assert got == {(1, 1024, 512): 9, (16, 1024, 512): 5, (1, 3072, 9216): 4}
    assert "2026-11-22" in merged["measured"] and "2026-11-24" in merged["measured"]
    assert merge_tables(None, new) == new
    with pytest.raises(ValueError, match="two devices"):
        merge_tables({**old, "device": "Other GPU"}, new)


class _FakeDevice:
    platform = "gpu"
    device_kind = "Test GPU Without A Table"

    def __init__(self, core_count):
        self.core_count = core_count


@pytest.mark.parametrize(("core_count", "split_k"), [(58, 5), (132, 10), (None, 10), (0, 10)])
def test_untabled_gpu_gets_the_rules_for_its_own_multiprocessors(monkeypatch, core_count, split_k):
    """8192 x 28672 at M = 1: 112 tiles of 256 columns, 64 steps of 32 packed rows; the rules
    aim at 8 programs an SM, so ceil(8 * SMs / 112): 5 on an L4's 58 SMs, 10 on 132 (also the
    count taken when the device does not give one)."""
    import jax

    from kernels_pallas.triton_matmul import num_sms

    device = _FakeDevice(core_count)
    monkeypatch.setattr(jax, "devices", lambda *a: [device])
    assert num_sms(device) == (core_count or 132)
    cfg = preferred_config("2bit", 1, 8192, 28672)
    assert (cfg.gemv, cfg.block_n, cfg.block_k, cfg.split_k) == (True, 256, 32, split_k)


def test_mosaic_entries_record_the_faster_kernel_and_bound_the_lookup(tmp_path) -> None:
    """A run with ``--mosaic``: each point says the Mosaic tiling where it beat the Triton time,
    null where it lost; the lookup answers from the smallest measured M at or above the call's
    and says nothing below the smallest measured M or for points never measured."""
    from kernels_pallas.mosaic_matmul import MosaicConfig
    from kernels_pallas.tuning import tuned_mosaic_config

    fast = MosaicConfig(128, 64, 2, 2).__dict__

    def row(m, triton_s, mosaic_s):
        r = _row(m, 8192, 8192, 2, tried=1)
        r.update({"2bit_s": triton_s, "2bit_mosaic_tried": [{}], "2bit_mosaic_config": fast})
        if mosaic_s is not None:
            r["2bit_mosaic_s"] = mosaic_s
        return r

    result = {
        "device": "Test GPU",
        "date": "d",
        "jax": "0",
        "rows": [row(16, 20e-6, 30e-6), row(64, 40e-6, 28e-6), row(128, 70e-6, None)],
    }
    table = table_from_benchmark(result)
    assert [e.get("mosaic") for e in table["entries"]] == [None, fast, None]
    table_path("Test GPU", tmp_path).write_text(json.dumps(table))

    def lookup(m, k=8192):
        return tuned_mosaic_config("2bit", m, k, 8192, "Test GPU", tmp_path)

    assert lookup(1) == (False, None)  # below the smallest measured M: the rules decide
    assert lookup(16) == (True, None)  # measured, Triton won
    assert lookup(17) == lookup(64) == (True, MosaicConfig(**fast))
    assert lookup(100) == (True, None)  # the Mosaic kernel failed to run at 128
    assert lookup(129) == (False, None)
    assert lookup(64, k=4096) == (False, None)
