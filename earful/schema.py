"""The label schema: the single source of truth for tasks, labels and their order.

Training, export, the predictor, the service, batch scoring and evaluation all read
the task definitions from here, and a bundle stores the one it was trained with
(``schema.json``), so a model and its consumers can never disagree on what logit
index means which label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

COMPLAINT_TYPES: tuple[str, ...] = ("order_error", "product", "poor_service", "none")
NOT_A_COMPLAINT = "none"
#: A coarse label: "this is a complaint of some type", used where a source marks
#: complaints without saying which kind. Training learns from it (the probability
#: mass of the three complaint types) instead of dropping the row.
COMPLAINT = "complaint"
SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")
#: The language code reported when no language can be told.
UNDETERMINED = "und"

TASK_NAMES: tuple[str, ...] = ("complaint_type", "sentiment", "troll", "lang")

#: The ISO 639-1 codes: what a caller's language hint may be (a bounded set, so it can label a metric).
ISO_639_1 = frozenset(
    """
aa ab ae af ak am an ar as av ay az ba be bg bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv dz ee el en eo es
et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj
kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv
ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti
tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu
""".split()
)


def lang_hint(value: str) -> str:
    """A caller's language hint as a lower-case ISO 639-1 code; ValueError saying what is wrong otherwise."""
    code = value.strip().lower() if isinstance(value, str) else value
    if code not in ISO_639_1:
        raise ValueError(f"{value!r} is not an ISO 639-1 language code like 'en' or 'es'; leave it out when unknown")
    return code


@dataclass(frozen=True)
class Task:
    """One prediction head.

    ``kind`` is ``"multiclass"`` (softmax over ``labels``) or ``"binary"`` (one
    logit, sigmoid, the probability of label 1).
    """

    name: str
    kind: str
    labels: tuple[str, ...]

    @property
    def n_outputs(self) -> int:
        return 1 if self.kind == "binary" else len(self.labels)


@dataclass(frozen=True)
class Schema:
    """The four heads. Only the language head's labels vary between models:
    it knows the languages it was trained on, listed in ``languages``."""

    languages: tuple[str, ...]
    version: int = 1
    tasks: tuple[Task, ...] = field(init=False)

    def __post_init__(self) -> None:
        if not self.languages:
            raise ValueError("a schema needs at least one language for the lang head")
        bad = [c for c in self.languages if not _is_lang_code(c) or c == UNDETERMINED]
        if bad:
            raise ValueError(f"invalid language codes for the lang head: {bad} (want ISO 639-1 like 'en')")
        if len(set(self.languages)) != len(self.languages):
            raise ValueError("duplicate language codes in schema")
        object.__setattr__(
            self,
            "tasks",
            (
                Task("complaint_type", "multiclass", COMPLAINT_TYPES),
                Task("sentiment", "multiclass", SENTIMENTS),
                Task("troll", "binary", ("0", "1")),
                Task("lang", "multiclass", tuple(self.languages)),
            ),
        )

    def task(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"unknown task {name!r}; tasks are {', '.join(TASK_NAMES)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "tasks": [{"name": t.name, "kind": t.kind, "labels": list(t.labels)} for t in self.tasks],
            "coarse_labels": {"complaint_type": {COMPLAINT: list(COMPLAINT_TYPES[:3])}},
            "undetermined_lang": UNDETERMINED,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schema:
        tasks = {t["name"]: t for t in data["tasks"]}
        schema = cls(languages=tuple(tasks["lang"]["labels"]), version=int(data.get("version", 1)))
        for t in schema.tasks:  # a bundle from another schema version must not load silently
            stored = tasks.get(t.name)
            if stored is None or tuple(stored["labels"]) != t.labels or stored["kind"] != t.kind:
                raise ValueError(
                    f"schema mismatch for task {t.name!r}: bundle has {stored}, this earful expects "
                    f"{t.kind} over {list(t.labels)}; use the earful version that built the bundle"
                )
        return schema


def _is_lang_code(code: str) -> bool:
    return isinstance(code, str) and 2 <= len(code) <= 3 and code.isalpha() and code.islower()


def is_lang_code(code: str) -> bool:
    """True for a lower-case ISO 639 code such as ``en`` (or ``und``)."""
    return _is_lang_code(code)
