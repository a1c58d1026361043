"""Writing an evaluation: metrics.json for machines, report.md (+ PNG plots) for people."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HEAD_TITLES = {"complaint_type": "Complaint type", "sentiment": "Sentiment", "troll": "Troll", "lang": "Language"}


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def plot_confusion(labels: list[str], matrix: list[list[int]], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.array(matrix)
    size = max(3.5, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(labels) <= 12:
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(
                    j,
                    i,
                    str(m[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if m[i, j] > m.max() / 2 else "black",
                )
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_reliability(bins: list[dict], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.8, 3.8))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    xs = [b["confidence"] for b in bins if b["n"]]
    ys = [b["accuracy"] for b in bins if b["n"]]
    ns = [b["n"] for b in bins if b["n"]]
    ax.scatter(xs, ys, s=[10 + 120 * n / max(ns) for n in ns] if ns else None)
    ax.plot(xs, ys, lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(
    out: Path,
    metrics: dict,
    bundle_info: dict,
    errors: dict | None = None,
    comparison: dict | None = None,
    baselines: dict | None = None,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    lines = [f"# Evaluation of {bundle_info['name']} {bundle_info['version']} ({bundle_info['variant']})", ""]
    if "posts" in bundle_info:
        lines += [f"Posts {bundle_info['posts']}.", ""]
    for stem, heads in metrics.items():
        lines += [
            f"## {stem}",
            "",
            "| head | n | accuracy | macro-F1 | ECE | complaint-vs-none macro-F1 |",
            "|---|---|---|---|---|---|",
        ]
        for head, m in heads.items():
            lines.append(
                f"| {head} | {m['n']} | {_fmt(m['accuracy'])} | {_fmt(m['macro_f1'])} | {_fmt(m['ece'])} | "
                f"{_fmt(m.get('binary_macro_f1'))} |"
            )
        lines.append("")
        for head, m in heads.items():
            title = f"{stem} · {HEAD_TITLES.get(head, head)}"
            lines += [f"### {title}", "", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
            for label, r in m["per_class"].items():
                lines.append(
                    f"| {label} | {_fmt(r['precision'])} | {_fmt(r['recall'])} | {_fmt(r['f1'])} | {r['support']} |"
                )
            base = f"{stem}_{head}"
            plot_confusion(m["confusion"]["labels"], m["confusion"]["matrix"], title, out / f"{base}_confusion.png")
            plot_reliability(
                m["reliability"], f"{title}: reliability (ECE {m['ece']:.3f})", out / f"{base}_reliability.png"
            )
            lines += ["", f"![confusion]({base}_confusion.png) ![reliability]({base}_reliability.png)", ""]
            if len(m["confusion"]["labels"]) <= 8:
                labels = m["confusion"]["labels"]
                lines += ["| true \\ predicted | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
                lines += [
                    f"| {labels[i]} | " + " | ".join(str(v) for v in row) + " |"
                    for i, row in enumerate(m["confusion"]["matrix"])
                ]
                lines.append("")
            lines += ["By language:", "", "| lang | n | accuracy | macro-F1 | ECE |", "|---|---|---|---|---|"]
            for code, b in m["by_lang"].items():
                lines.append(
                    f"| {code} | {b['n']} | {_fmt(b['accuracy'])} | {_fmt(b['macro_f1'])} | {_fmt(b['ece'])} |"
                )
            lines.append("")
            if baselines and stem in baselines and head in baselines[stem]:
                lines += ["Baselines on the same rows:", "", "| model | accuracy | macro-F1 |", "|---|---|---|"]
                lines.append(f"| {bundle_info['name']} | {_fmt(m['accuracy'])} | {_fmt(m['macro_f1'])} |")
                for name, bm in baselines[stem][head].items():
                    lines.append(f"| {name} | {_fmt(bm['accuracy'])} | {_fmt(bm['macro_f1'])} |")
                lines.append("")
            if errors and stem in errors and errors[stem].get(head):
                lines += [
                    "Most confident mistakes:",
                    "",
                    "| confidence | truth | predicted | text |",
                    "|---|---|---|---|",
                ]
                for e in errors[stem][head]:
                    text = " ".join(e["text"].split())[:160].replace("|", "\\|")
                    lines.append(f"| {e['confidence']:.3f} | {e['truth']} | {e['predicted']} | {text} |")
                lines.append("")
    if comparison:
        lines += [
            f"## Comparison with {comparison['other']['name']} {comparison['other']['version']}",
            "",
            "Difference = other − this; 95% CI from a paired bootstrap over rows. Macro-F1, but accuracy for the "
            "language head (its macro-F1 gives a language with one post in a file the weight of the file's main one). "
            "`complaint_binary` is complaint vs not: the complaint-type head's `none` against the three types.",
            "",
            "| file | head | metric | this | other | difference | 95% CI |",
            "|---|---|---|---|---|---|---|",
        ]
        for stem, heads in comparison["files"].items():
            for head, c in heads.items():
                lines.append(
                    f"| {stem} | {head} | {c['metric']} | {_fmt(c['this'])} | {_fmt(c['other'])} | "
                    f"{c['difference']:+.3f} | [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}] |"
                )
        lines.append("")
    (out / "report.md").write_text("\n".join(lines))
