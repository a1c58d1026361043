"""Language decisions the lang head cannot make alone.

The head only knows the languages it was trained on. When a post has no
linguistic content (emoji, links, digits), the answer is ``und``; when the head
is unsure, langdetect (seeded, so it is deterministic) gets a say, because the
post may be in a language the head does not know.
"""

from __future__ import annotations

import re
import threading
import unicodedata

_STRIP = re.compile(r"https?://\S+|www\.\S+|[@#]\w+|__\w+__", re.UNICODE)
_lock = threading.Lock()
_factory_ready = False


def linguistic_content(text: str) -> str:
    """The text without URLs, @mentions, #tags and placeholders."""
    return _STRIP.sub(" ", text).strip()


def has_letters(text: str) -> bool:
    return any(unicodedata.category(ch).startswith("L") for ch in text)


def langdetect_guess(text: str) -> tuple[str, float] | None:
    """langdetect's best (ISO 639-1 code, probability), or None when it cannot tell.

    ``zh-cn``/``zh-tw`` become ``zh``. langdetect is not thread-safe in its
    factory set-up, hence the lock around initialisation."""
    global _factory_ready
    from langdetect import DetectorFactory, detector_factory
    from langdetect.lang_detect_exception import LangDetectException

    with _lock:
        if not _factory_ready:
            DetectorFactory.seed = 0
            detector_factory.init_factory()
            _factory_ready = True
    try:
        detector = detector_factory._factory.create()
        detector.append(text)
        best = detector.get_probabilities()[0]
    except (LangDetectException, IndexError):
        return None
    return best.lang.split("-")[0], float(best.prob)
