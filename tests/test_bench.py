"""earful bench end to end on a tiny bundle, and its FLOP arithmetic."""

import json
import subprocess
import sys

import numpy as np
import pytest

from earful.eval.bench import encoder_gflop


def test_flop_count_by_hand():
    # 1 layer, hidden 2, ff 4: linear params = 4*2*2 + 2*2*4 = 32 -> 64 FLOP/token; attention 4*T^2*2
    g = encoder_gflop(np.array([3]), layers=1, hidden=2, ff=4)
    assert g == pytest.approx((64 * 3 + 4 * 9 * 2) / 1e9)


def test_bench_runs_end_to_end_on_a_tiny_bundle(tiny_bundle, tiny_data, tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "earful.cli",
            "bench",
            "--bundle",
            str(tiny_bundle),
            "--data",
            str(tiny_data[1]),
            "--out",
            str(tmp_path),
            "--posts",
            "40",
            "--latency-posts",
            "10",
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    b = json.loads((tmp_path / "bench.json").read_text())
    for key in ("speedup_vs_transformers", "speedup_vs_langdetect", "posts_per_s_int8", "fraction_of_peak"):
        assert b[key] and b[key] > 0, key
    assert b["posts_per_s_fp32"] > 0 and b["peak_gflops_int8"] > 0 and b["latency_ms_int8"]["p50"] > 0
    assert len(b["speedup_vs_langdetect_rounds"]) == 3 and b["speedup_vs_langdetect"] == float(
        np.median(b["speedup_vs_langdetect_rounds"])
    )
    assert "speed-up vs transformers" in (tmp_path / "bench.md").read_text()


def test_bench_times_fp32_from_a_full_export_of_an_int8_only_bundle(tiny_run, tiny_bundle, tiny_data, tmp_path):
    from earful.eval.bench import run_bench
    from earful.export.build import export_bundle

    card = "## Data\nSynthetic test rows."
    int8_only = export_bundle(tiny_run, tmp_path / "int8", name="tiny-test", version="0.0.1", fp32=False, card=card)
    args = dict(
        files=[str(tiny_data[1])],
        bundle=str(int8_only),
        n_posts=20,
        latency_posts=5,
        threads=1,
        with_transformers=False,
        rounds=1,
    )
    alone = run_bench(**args)
    assert alone.posts_per_s_fp32 is None and any("--fp32-bundle" in n for n in alone.notes)
    paired = run_bench(**args, fp32_bundle=str(tiny_bundle))
    assert paired.posts_per_s_fp32 > 0 and paired.latency_ms_fp32["p50"] > 0
    other = export_bundle(tiny_run, tmp_path / "other", name="tiny-test", version="0.0.2", int8=False, card=card)
    with pytest.raises(ValueError, match="not the benchmarked tiny-test 0.0.1"):
        run_bench(**args, fp32_bundle=str(other))
