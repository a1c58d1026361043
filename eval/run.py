"""The ``earful eval`` command's driver: predict, score, compare, report."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path

from earful.eval.evaluate import (
    HEADS,
    bootstrap_difference,
    file_metrics,
    head_outcomes,
    most_confident_errors,
    predict_set,
)
from earful.eval.report import write_report
from earful.labelled import read_labelled
from earful.models.predictor import Predictor

#: What ``--compare`` scores a head by where not macro-F1. Language is compared on accuracy: its macro-F1 averages
#: over a file's gold languages, so in a mostly English file one post in another language weighs as much as English.
COMPARED_ON = {"lang": "accuracy"}
#: The figures ``--compare`` compares: every head, and complaint vs not (``complaint_binary``, the complaint-type
#: head's none-or-not view), a target figure that can fall while the four-class macro-F1 holds.
COMPARED = tuple(f for head in HEADS for f in ((head, "complaint_binary") if head == "complaint_type" else (head,)))


def _figure(file_metrics_: dict, figure: str, metric: str) -> float:
    if figure == "complaint_binary":
        return file_metrics_["complaint_type"]["binary_macro_f1"]
    return file_metrics_[figure][metric]


@dataclass
class EvalResult:
    metrics: dict
    out: Path
    #: ``{stem: {head: HeadOutcome}}``: the per-row labels behind ``metrics``, for paired comparisons.
    outcomes: dict
    #: ``{stem: InvarianceResult.to_dict()}`` when asked for (``invariance=True``).
    invariance: dict | None = None


def _outcomes(predictor, sets, desc: str):
    """Per file, the head outcomes of anything with the predictor's ``predict``."""
    from tqdm.auto import tqdm

    skipped = _untrained(predictor)
    total = sum(len(s) for s in sets)
    with tqdm(total=total, desc=desc, unit="post", mininterval=0.5 if sys.stderr.isatty() else 30) as bar:
        return {
            s.name: {
                head: o
                for head, o in head_outcomes(s, predict_set(predictor, s, progress=bar)).items()
                if head not in skipped
            }
            for s in sets
        }


def _untrained(predictor) -> set[str]:
    """The heads not to score: those the bundle marks untrained (they answer null). An untrained lang head is still
    scored: the language then comes from langdetect, and that is what is served."""
    untrained = set(getattr(getattr(predictor, "bundle", None), "untrained_heads", ())) - {"lang"}
    return untrained | ({"complaint_binary"} if "complaint_type" in untrained else set())


def _baseline_metrics(names: list[str], train: list[str] | None, sets) -> dict:
    """``{stem: {head: {baseline: metrics}}}`` for the heads each baseline covers."""
    from earful.eval.baselines import COVERS, LanguageIdBaseline, TfidfBaseline

    result: dict = {}
    for name in names:
        if name == "tfidf":
            if not train:
                raise ValueError("the tfidf baseline needs --baseline-train FILES (the training data to fit it on)")
            model = TfidfBaseline.fit([read_labelled(p) for p in train])
        else:
            model = LanguageIdBaseline(name)
        for s, outcomes in _outcomes(model, sets, f"baseline {name}").items():
            for head, m in file_metrics(outcomes).items():
                if head in COVERS[name]:
                    keep = {k: m[k] for k in ("n", "accuracy", "macro_f1", "binary_macro_f1", "by_lang") if k in m}
                    result.setdefault(s, {}).setdefault(head, {})[name] = keep
    return result


def _without_handles(s):
    """The set with @handles and URLs deleted from its posts, and the number of posts left out because nothing else
    was in them (an empty post would count as wrong for every bundle alike and add a class of its own)."""
    from earful.eval.invariance import without_handles_urls

    edited = [without_handles_urls(t) if t else t for t in s.text]
    keep = [i for i, (t, e) in enumerate(zip(s.text, edited, strict=True)) if e or not t]
    columns = {f.name: [getattr(s, f.name)[i] for i in keep] for f in fields(s) if isinstance(getattr(s, f.name), list)}
    return replace(s, **{**columns, "text": [edited[i] for i in keep]}), len(s) - len(keep)


def run_eval(
    paths: list[str],
    out: Path,
    bundle: str | None = None,
    variant: str = "int8",
    compare: str | None = None,
    errors: int = 0,
    threads: int | None = None,
    baselines: list[str] = (),
    baseline_train: list[str] | None = None,
    invariance: bool = False,
    without_handles: bool = False,
) -> EvalResult:
    """Evaluate a bundle on labelled files (and, with ``baselines``, the reference
    models of :mod:`earful.eval.baselines` on the same rows; written to baselines.json; with ``invariance``,
    how often labels change when @handles and URLs are removed or added, :mod:`earful.eval.invariance`,
    written to invariance.json and the report; with ``without_handles``, every bundle reads the posts with their
    @handles and URLs deleted, which shows how much of a figure rests on them)."""
    sets = [read_labelled(p, require_text=False) for p in paths]
    as_written, left_out = sets, 0
    if without_handles:
        edited = [_without_handles(s) for s in sets]
        sets, left_out = [s for s, _ in edited], sum(n for _, n in edited)
    stems = [s.name for s in sets]
    if len(set(stems)) != len(stems):
        raise ValueError(f"two input files share a name stem ({stems}); metrics.json is keyed by stem, rename one")
    predictor = Predictor.load(bundle, variant=variant, threads=threads)
    outcomes = _outcomes(predictor, sets, f"eval {predictor.bundle.name}")
    metrics = {name: file_metrics(o) for name, o in outcomes.items()}
    error_lists = None
    if errors:
        by_name = {s.name: s for s in sets}
        error_lists = {
            name: {h: most_confident_errors(by_name[name], o[h], errors) for h in HEADS if h in o}
            for name, o in outcomes.items()
        }
    comparison = None
    if compare:
        other = Predictor.load(compare, variant=variant, threads=threads)
        other_outcomes = _outcomes(other, sets, f"eval {other.bundle.name}")
        comparison = {"other": {"name": other.bundle.name, "version": other.bundle.version}, "files": {}}
        for name, o in outcomes.items():
            rows, other_metrics = {}, file_metrics(other_outcomes[name])
            for figure in COMPARED:
                if figure in o and figure in other_outcomes[name]:
                    metric = COMPARED_ON.get(figure, "macro_f1")
                    rows[figure] = {
                        "metric": metric,
                        "this": _figure(metrics[name], figure, metric),
                        "other": _figure(other_metrics, figure, metric),
                        **bootstrap_difference(o[figure], other_outcomes[name][figure], metric),
                    }
            comparison["files"][name] = rows
    reference = _baseline_metrics(list(baselines), baseline_train, sets) if baselines else None
    info = {"name": predictor.bundle.name, "version": predictor.bundle.version, "variant": variant}
    if without_handles:
        info["posts"] = f"with @handles and URLs deleted ({left_out} that held nothing else left out)"
    write_report(out, metrics, info, error_lists, comparison, reference)
    if reference:
        (out / "baselines.json").write_text(json.dumps(reference, indent=2))
    if comparison:
        (out / "comparison.json").write_text(json.dumps(comparison, indent=2))
    result = EvalResult(metrics, out, outcomes)
    if invariance:
        from earful.eval.invariance import measure_invariance, render_markdown

        # on the posts as written: edits that remove handles need posts that still have them
        found = {s.name: measure_invariance(predictor, [t for t in s.text if t]) for s in as_written if any(s.text)}
        result.invariance = {name: r.to_dict() for name, r in found.items()}
        (out / "invariance.json").write_text(json.dumps(result.invariance, indent=2))
        with open(out / "report.md", "a", encoding="utf-8") as report:
            for name, r in found.items():
                report.write("\n" + render_markdown(r).replace("## Invariance", f"## {name}: invariance", 1))
    return result
