"""Language decisions the lang head cannot make alone.

The head only knows the languages it was trained on. When a post has no
linguistic content (emoji, links, digits), the answer is ``und``. When the head
is unsure, the post's script decides what can help: langdetect (seeded, so it
is deterministic) is asked only when the post is written in a script that some
language langdetect knows, and the head does not, is written in. Elsewhere
langdetect can only name a language the head also knows, and on the unsure
validation rows its answers were no more accurate than the head's own best
guess (lingua rows: 74.8% either way), while it cost about a fifth of the
predictor's time; so there the head's best guess stands, with its low
confidence. A script no known language is written in gets ``und``.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import Counter

_STRIP = re.compile(r"https?://\S+|www\.\S+|[@#]\w+|__\w+__", re.UNICODE)
_lock = threading.Lock()
_factory_ready = False

#: langdetect's codes that are not ISO 639-1 or that earful spells otherwise
#: (langdetect's Norwegian profile is Bokmål).
LANGDETECT_CODES = {"zh-cn": "zh", "zh-tw": "zh", "no": "nb"}

#: The scripts each language is written in, as the first word of the Unicode
#: names of its letters: every language langdetect knows (codes as
#: :data:`LANGDETECT_CODES` maps them) and every language the default head knows.
SCRIPTS: dict[str, tuple[str, ...]] = {
    **{
        code: ("LATIN",)
        for code in (
            "af",
            "az",
            "bs",
            "ca",
            "cs",
            "cy",
            "da",
            "de",
            "en",
            "eo",
            "es",
            "et",
            "eu",
            "fi",
            "fr",
            "ga",
            "hr",
            "hu",
            "id",
            "is",
            "it",
            "la",
            "lg",
            "lt",
            "lv",
            "mi",
            "ms",
            "nb",
            "nl",
            "nn",
            "pl",
            "pt",
            "ro",
            "sk",
            "sl",
            "sn",
            "so",
            "sq",
            "st",
            "sv",
            "sw",
            "tl",
            "tn",
            "tr",
            "ts",
            "vi",
            "xh",
            "yo",
            "zu",
        )
    },
    **{code: ("CYRILLIC",) for code in ("be", "bg", "kk", "mk", "mn", "ru", "uk")},
    **{code: ("ARABIC",) for code in ("ar", "fa", "ur")},
    **{code: ("DEVANAGARI",) for code in ("hi", "mr", "ne")},
    "sr": ("CYRILLIC", "LATIN"),
    "el": ("GREEK",),
    "he": ("HEBREW",),
    "hy": ("ARMENIAN",),
    "ka": ("GEORGIAN",),
    "bn": ("BENGALI",),
    "gu": ("GUJARATI",),
    "pa": ("GURMUKHI",),
    "ta": ("TAMIL",),
    "te": ("TELUGU",),
    "kn": ("KANNADA",),
    "ml": ("MALAYALAM",),
    "th": ("THAI",),
    "ko": ("HANGUL",),
    "zh": ("CJK",),
    "ja": ("HIRAGANA", "KATAKANA", "CJK"),
}


def linguistic_content(text: str) -> str:
    """The text without URLs, @mentions, #tags and placeholders."""
    return _STRIP.sub(" ", text).strip()


def has_letters(text: str) -> bool:
    """Cheaper than :func:`main_script` (it stops at the first letter), for the common case."""
    return any(unicodedata.category(ch).startswith("L") for ch in text)


def main_script(text: str) -> str | None:
    """The script most of the text's letters are in (None without letters)."""
    counts = Counter(
        unicodedata.name(ch, "?").split(" ", 1)[0] for ch in text if unicodedata.category(ch).startswith("L")
    )
    return counts.most_common(1)[0][0] if counts else None


def langdetect_languages() -> set[str]:
    """Every language langdetect can answer, in earful's codes."""
    _ensure_factory()
    from langdetect import detector_factory

    return {LANGDETECT_CODES.get(code, code) for code in detector_factory._factory.get_lang_list()}


def scripts_of(languages) -> set[str]:
    """The scripts the given languages are written in (those :data:`SCRIPTS` knows)."""
    return {script for code in languages for script in SCRIPTS.get(code, ())}


def _ensure_factory() -> None:
    """langdetect's factory set-up is not thread-safe, hence the lock."""
    global _factory_ready
    from langdetect import DetectorFactory, detector_factory

    with _lock:
        if not _factory_ready:
            DetectorFactory.seed = 0
            detector_factory.init_factory()
            _factory_ready = True


def langdetect_guess(text: str) -> tuple[str, float] | None:
    """langdetect's best (language code, probability), or None when it cannot tell
    (codes mapped by :data:`LANGDETECT_CODES`)."""
    from langdetect import detector_factory
    from langdetect.lang_detect_exception import LangDetectException

    _ensure_factory()
    try:
        detector = detector_factory._factory.create()
        detector.append(text)
        best = detector.get_probabilities()[0]
    except (LangDetectException, IndexError):
        return None
    return LANGDETECT_CODES.get(best.lang, best.lang), float(best.prob)
