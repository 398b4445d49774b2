"""Packed sizes of the 3.9B Spectra preset, from shapes alone."""

from __future__ import annotations

import pytest

from export.sizes import ternary_size
from trilm_jax.config import load_config
from trilm_jax.model.transformer import count_params


@pytest.fixture(scope="module")
def spectra_3_9b():
    from trilm_jax.config import CONFIGS_DIR

    return load_config(CONFIGS_DIR / "models" / "spectra-3.9b.yaml", ["data.seq_len=2048"]).model


def test_2bit_is_one_eighth_and_1p6bit_about_one_tenth_of_bf16(spectra_3_9b):
    two = ternary_size(spectra_3_9b, "trilm-2bit")
    assert two.n_ternary_weights == count_params(spectra_3_9b)["ternary"]
    assert two.packed_bytes * 8 == two.bf16_bytes  # 2 bits vs 16
    assert two.scale_bytes == 4 * 30 * 7 * 6  # float32, 6 shards, 7 linears, 30 layers
    assert two.ratio_to_bf16 == pytest.approx(1 / 8, rel=1e-4)
    onesix = ternary_size(spectra_3_9b, "trilm-1.6bit")
    # 5 trits a byte plus padding of K to a multiple of 160: 1/10 * (1 + padding)
    assert onesix.ratio_to_bf16 == pytest.approx(1 / 10, rel=0.05)
    assert onesix.ratio_to_bf16 < 0.105
    tq2 = ternary_size(spectra_3_9b, "gguf-tq2_0")
    assert tq2.ratio_to_bf16 == pytest.approx(66 / 512)
    assert ternary_size(spectra_3_9b, "gguf-tq1_0").ratio_to_bf16 == pytest.approx(54 / 512)
