"""The Results block and the model card's evaluation section: every table headed by the machine its run recorded."""

import json
import shutil

import pytest

from earful import machine as machine_module
from earful.machine import NOT_RECORDED, heading, machine, stamp

CPUINFO = """processor\t: 0
model name\t: Test CPU 9000
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 amx_tile amx_int8 amx_bf16
processor\t: 1
model name\t: Test CPU 9000
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 amx_tile amx_int8 amx_bf16
"""


def test_machine_names_the_processor_cores_and_instruction_sets():
    line = machine(CPUINFO, cores=2)
    assert line.startswith("Test CPU 9000, 2 cores, AVX-512, VNNI, AMX (flags: ")
    for flag in ("avx2", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16"):
        assert flag in line
    assert "fpu" not in line  # only the flags that change the figures
    plain = machine("model name\t: Old CPU\nflags\t\t: sse4_2 avx\n", cores=4)
    assert plain == "Old CPU, 4 cores, no AVX2, no VNNI (flags: sse4_2 avx)"
    arm = machine("processor\t: 0\nFeatures\t: fp asimd asimddp bf16 i8mm\n", cores=8)
    assert ", 8 cores, " in arm and "asimddp bf16 i8mm" in arm


def test_heading_carries_the_recorded_machine_and_date_or_says_none_was_recorded():
    assert heading({"machine": "Test CPU 9000, 2 cores", "date": "2030-01-02"}) == (
        "Machine: Test CPU 9000, 2 cores; 2030-01-02."
    )
    assert heading(None) == heading({"bundle": "m 1"}) == f"Machine: {NOT_RECORDED}."
    record = stamp()
    assert record["machine"] == machine() and len(record["date"]) == 10


@pytest.fixture
def test_cpu(monkeypatch):
    """machine() on a processor of the test's making, so the headings can only have come from it."""
    real = machine_module.machine
    monkeypatch.setattr(machine_module, "machine", lambda cpuinfo=None, cores=None: real(CPUINFO, cores=3))
    return real(CPUINFO, cores=3)


def _bench(**stamped):
    from earful.eval.bench import BenchResult

    return BenchResult(
        posts=10,
        mean_tokens=20.0,
        threads=3,
        bundle="m 1.0",
        bundle_load_s=0.1,
        posts_per_s_int8=100.0,
        posts_per_s_fp32=None,
        posts_per_s_transformers=10.0,
        posts_per_s_transformers_sorted=20.0,
        posts_per_s_langdetect=90.0,
        latency_ms_int8={"p50": 1.0, "p99": 2.0, "n": 10},
        latency_ms_fp32=None,
        latency_ms_transformers={"p50": 3.0, "p99": 4.0, "n": 10},
        peak_gflops_fp32=100.0,
        peak_gflops_int8=400.0,
        gflop_per_post=1.0,
        fraction_of_peak=0.25,
        speedup_vs_transformers=10.0,
        speedup_vs_langdetect=1.1,
        speedup_vs_langdetect_rounds=[1.0, 1.1, 1.2],
        peak_rss_mb_predictor=300.0,
        **stamped,
    )


def _summary(**stamped) -> dict:
    return {
        "bundle": "m 1.0",
        **stamped,
        "command": ".venv/bin/python -m earful.eval.results --skip-bench",
        "figures": [
            {
                "figure": "troll macro-F1, OLID",
                "value": 0.74,
                "goal": 0.8,
                "file": "olid",
                "note": "same rows: tfidf 0.7",
            }
        ],
        "ece": {"olid/troll": 0.02},
        "int8_minus_fp32_macro_f1": None,
        "int8_minus_fp32_last_measured": {"bundle": "m 0.9", "drift": {"olid/troll": -0.001}, "ci95": None},
    }


def _tables_are_headed(lines: list[str]) -> list[str]:
    """The machine line heading each table (the last "Machine:" line above it); fails on a table with none."""
    found, current, in_table = [], None, False
    for line in lines:
        for part in line.split("\n"):
            if part.startswith("Machine:"):
                current = part
            elif part.startswith("|---"):
                assert current is not None, "a table without a machine line above it"
                found.append(current)
                in_table = True
            elif in_table and not part.startswith("|"):
                in_table, current = False, None  # the next table needs a heading of its own
    return found


def test_every_table_of_the_block_is_headed_by_the_machine_its_run_recorded(test_cpu, tmp_path):
    from earful.eval.results import block_lines, card_section

    service = tmp_path / "loadtest.md"
    service.write_text("Median of 3 rounds (round 2):\n\n| clients | req/s |\n|---|---|\n| 1 | 38.8 |\n")
    (tmp_path / "loadtest.json").write_text(json.dumps({"machine": "Other CPU, 2 cores", "date": "2030-01-01"}))
    batch = tmp_path / "batch_bench.md"
    batch.write_text("# earful score: 10 real posts, 2 cores\n\n| workers | rows/s |\n|---|---|\n| 1 | 5.0 |\n")
    (tmp_path / "batch_bench.json").write_text(json.dumps({"rows": 10}))  # written before machines were recorded
    others = [
        (service, "python -m earful.serving.loadtest", "Service"),
        (batch, "python -m earful.batch.bench", "Batch"),
    ]

    lines = block_lines(_summary(**stamp()), _bench(**stamp()), others)
    headings = _tables_are_headed(lines)
    today = stamp()["date"]
    assert headings == [
        f"Machine: {test_cpu}; {today}.",  # the evaluation, measured now
        f"Machine: {test_cpu}; {today}.",  # the bench, from its own record
        "Machine: Other CPU, 2 cores; 2030-01-01.",  # the load test's JSON
        f"Machine: {NOT_RECORDED}.",  # a file that recorded none says so
    ]
    text = "\n".join(lines)
    assert "2-core machine" not in text and "this machine" not in text and "| met |" not in text
    assert "`.venv/bin/python -m earful.eval.results --skip-bench`" in text
    # the int8-vs-fp32 comparison carried from an earlier evaluation says which, and that its machine is unknown
    assert (
        f"from the evaluation of `m 0.9` with an fp32 export of the same model (`--fp32-bundle`). {heading(None)}"
        in text
    )
    metrics = {"offenseval2020": {"troll": {"by_lang": {"da": {"n": 5, "macro_f1": 0.5}}}}}
    card = card_section(lines, metrics, _summary(**stamp())).split("\n")
    assert _tables_are_headed(card)[-1] == f"Machine: {test_cpu}; {today}."  # the per-language table
    assert "| offenseval2020 | troll | da | 5 | 0.500 |" in card


def test_a_bench_carried_over_keeps_the_machine_its_json_recorded(test_cpu, tmp_path):
    from dataclasses import asdict

    from earful.eval.bench import bench_markdown, load_bench, write_bench

    write_bench(_bench(machine="Earlier CPU, 2 cores", date="2030-01-01"), tmp_path)
    carried = load_bench(tmp_path / "bench.json")
    assert carried.machine == "Earlier CPU, 2 cores"
    assert "Machine: Earlier CPU, 2 cores; 2030-01-01." in (tmp_path / "bench.md").read_text()
    old = asdict(_bench())
    del old["machine"], old["date"]  # a bench.json from before machines were recorded
    (tmp_path / "bench.json").write_text(json.dumps(old))
    assert f"Machine: {NOT_RECORDED}." in bench_markdown(load_bench(tmp_path / "bench.json"))


def test_render_refuses_figures_of_another_bundle(tiny_bundle, tmp_path, monkeypatch):
    from earful.eval import results

    monkeypatch.setattr(results, "OUT", tmp_path)
    (tmp_path / "summary.json").write_text(json.dumps(_summary()))
    with pytest.raises(SystemExit, match="figures of m 1.0, not of tiny-test 0.0.1"):
        results.main(["--render", "--bundle", str(tiny_bundle)])


def test_the_readme_keeps_the_quality_figures_and_the_results_page_every_table(test_cpu, tmp_path):
    from earful.eval.results import block_lines, readme_lines, write_results_page

    summary = _summary(**stamp())
    readme = readme_lines(summary)
    page = tmp_path / "results.md"
    write_results_page(block_lines(summary, _bench(**stamp()), []), page)
    text = page.read_text()
    assert text.startswith("# Results\n") and "**Speed and memory**" in text and "**Quality figures**" in text
    assert len(_tables_are_headed(text.split("\n"))) == 2
    assert "**Quality figures**" in "\n".join(readme) and "**Speed and memory**" not in "\n".join(readme)
    assert readme[-1].endswith("[docs/results.md](docs/results.md).")
    assert len(_tables_are_headed(readme)) == 1


def test_an_fp32_bundle_of_another_model_is_refused_before_measuring(tiny_bundle, tmp_path, monkeypatch):
    from earful.eval import results
    from earful.export.writer import edit_bundle

    other = tmp_path / "other"
    shutil.copytree(tiny_bundle, other)
    with edit_bundle(other) as writer:
        writer.update_json("bundle.json", {"version": "0.0.2"})
    monkeypatch.setattr(results, "_measure", lambda *a: pytest.fail("measured with the wrong fp32 bundle"))
    with pytest.raises(SystemExit, match="is tiny-test 0.0.2, not the benchmarked tiny-test 0.0.1"):
        results.main(["--bundle", str(tiny_bundle), "--fp32-bundle", str(other)])


def test_the_published_command_names_no_folder_outside_the_checkout(tmp_path, monkeypatch):
    from earful.eval.results import _shown

    checkout = tmp_path / "checkout"
    (checkout / "models" / "default").mkdir(parents=True)
    (tmp_path / "runs" / "full").mkdir(parents=True)
    monkeypatch.chdir(checkout)
    assert _shown(str(tmp_path / "runs" / "full")) == "…/full"
    assert _shown(str(checkout / "models" / "default")) == str(checkout / "models" / "default")
    assert _shown("models/default") == "models/default"
    assert _shown("--skip-bench") == "--skip-bench"


def test_a_set_s_mean_over_languages_leaves_out_posts_read_as_another_language():
    from earful.eval.results import SET_LANGUAGES, _per_language, quality_figures

    by_lang = {code: {"n": 300, "macro_f1": 0.6} for code in SET_LANGUAGES["xlm_t_umsab"]}
    by_lang |= {"ca": {"n": 1, "macro_f1": 0.0}, "und": {"n": 10, "macro_f1": 0.2}}  # posts read blind
    metrics = {"xlm_t_umsab": {"sentiment": {"macro_f1": 0.6, "by_lang": by_lang}}}
    figures = {row["figure"]: row["value"] for row in quality_figures(metrics, {}, ["en"])}
    assert figures["sentiment macro-F1, mean of the 8 UMSAB languages"] == pytest.approx(0.6)
    table = _per_language(metrics)
    assert "| xlm_t_umsab | sentiment | hi | 300 |" in table and "| ca |" not in table and "| und |" not in table
