"""``earful eval --invariance``: how often a post's labels change when nothing about its meaning does.

An @handle or a URL says whom a post addresses or what it links to, not whether it is a complaint. A model that
learned "a leading @handle means a complaint" (customer-support threads start with one) flips labels when a
handle is removed or added. Three edits of every post are classified beside the original:

- ``handles_urls_removed``: every @handle and URL deleted (posts that have neither are left out of its share);
- ``handle_added``: a brand handle put in front (one of :data:`HANDLES`, chosen by the post's position);
- ``handle_url_added``: a brand handle in front and a link at the end.

For each edit and head: the share of the edited posts whose label differs from the original's (complaint type,
sentiment, ``is_troll`` and language code). The target for every head is at most :data:`TARGET`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass

__all__ = [
    "EDITS",
    "HANDLES",
    "TARGET",
    "InvarianceResult",
    "measure_invariance",
    "render_markdown",
    "without_handles_urls",
]

#: Highest acceptable share of changed labels per head and edit.
TARGET = 0.03
HANDLES = ("@AmazonHelp", "@SpotifyCares", "@AppleSupport", "@Delta", "@comcastcares", "@UberSupport")
_HANDLE = re.compile(r"(?<![\w@])@\w+")
_URL = re.compile(r"(?:\bhttps?://|\bwww\.)\S+", re.IGNORECASE)


def without_handles_urls(text: str) -> str:
    """``text`` with every @handle and URL deleted and runs of spaces made one."""
    return " ".join(_URL.sub(" ", _HANDLE.sub(" ", text)).split())


def _remove(text: str, i: int) -> str | None:
    if not (_HANDLE.search(text) or _URL.search(text)):
        return None
    return without_handles_urls(text)


def _add_handle(text: str, i: int) -> str:
    return f"{HANDLES[i % len(HANDLES)]} {text}"


def _add_handle_url(text: str, i: int) -> str:
    return f"{HANDLES[i % len(HANDLES)]} {text} https://t.co/{i:06d}x"


#: name → edit(text, position) → the edited text, or None where the edit does not apply to the post.
EDITS: dict[str, Callable[[str, int], str | None]] = {
    "handles_urls_removed": _remove,
    "handle_added": _add_handle,
    "handle_url_added": _add_handle_url,
}


@dataclass
class InvarianceResult:
    posts: int
    #: ``{edit: {"posts": edited posts, "changed": {head: share of them whose label changed}}}``
    edits: dict
    target: float = TARGET

    @property
    def worst(self) -> float:
        return max((v for e in self.edits.values() for v in e["changed"].values()), default=0.0)

    def to_dict(self) -> dict:
        return {**asdict(self), "worst": self.worst, "within_target": self.worst <= self.target}


def _labels(predictions) -> dict[str, list]:
    return {
        "complaint_type": [None if p.complaint_type is None else p.complaint_type.label for p in predictions],
        "sentiment": [None if p.sentiment is None else p.sentiment.label for p in predictions],
        "troll": [p.is_troll for p in predictions],
        "lang": [p.lang.code for p in predictions],
    }


def measure_invariance(predictor, texts: list[str], batch_size: int = 64) -> InvarianceResult:
    """Classify ``texts`` and each edit of them with ``predictor``; the share of changed labels per edit and head.
    Heads that answer null (untrained) are left out."""
    texts = [t for t in texts if t and t.strip()]
    base = _labels(predictor.predict(texts, batch_size=batch_size))
    heads = [h for h, values in base.items() if any(v is not None for v in values)]
    edits = {}
    for name, edit in EDITS.items():
        edited = [(i, e) for i, t in enumerate(texts) if (e := edit(t, i)) is not None]
        if not edited:
            edits[name] = {"posts": 0, "changed": {}}
            continue
        after = _labels(predictor.predict([e for _, e in edited], batch_size=batch_size))
        changed = {
            h: round(sum(base[h][i] != after[h][k] for k, (i, _) in enumerate(edited)) / len(edited), 4) for h in heads
        }
        edits[name] = {"posts": len(edited), "changed": changed}
    return InvarianceResult(len(texts), edits)


def render_markdown(result: InvarianceResult) -> str:
    heads = sorted({h for e in result.edits.values() for h in e["changed"]})
    lines = [
        "## Invariance to @handles and URLs",
        "",
        f"Share of posts whose label changes under each edit (target ≤ {result.target:.0%} per head; "
        f"{result.posts:,} posts).",
        "",
        "| edit | posts | " + " | ".join(heads) + " |",
        "|---|---:|" + "---:|" * len(heads),
    ]
    for name, e in result.edits.items():
        cells = [f"{e['changed'][h]:.1%}" if h in e["changed"] else "–" for h in heads]
        lines.append(f"| {name} | {e['posts']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
