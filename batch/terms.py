"""Rising terms: which words and short phrases a set of posts uses more than a reference set.

Tokens. Text is HTML-unescaped and case-folded; URLs, @handles and e-mail addresses are removed; the ``#`` of a
hashtag is dropped and its word kept. Words follow Unicode's idea of a letter (``\\w`` without digits and ``_``,
with inner apostrophes), so any script written with spaces works. Scripts written without spaces (Han, kana,
Thai, Lao, Khmer, Myanmar, Tibetan) give overlapping character bigrams instead of words. Stop words of the
languages the model reads most (English, Spanish, French, German, Portuguese, Italian, Dutch, Swedish,
Danish/Norwegian, Polish, Turkish, Indonesian, Russian, Arabic), one-letter words, and words without a
letter are left out.
A post's terms are its words plus the two-word phrases of adjacent words that are neither stop words nor
split by a removed stop word, URL or handle. Each post counts once per term (document frequency), so one
post repeating a word cannot make it rise.

Statistic. Log-odds ratio with an informative Dirichlet prior (Monroe, Colaresi & Quinn 2008, "Fightin'
Words", eq. 22): for term w with counts y_a, y_b in corpora of sizes n_a, n_b and prior α_w = α0 · the
term's frequency in a background corpus (every post of the reporting window),

    δ_w = log((y_a + α_w) / (n_a + α0 − y_a − α_w)) − log((y_b + α_w) / (n_b + α0 − y_b − α_w))
    z_w = δ_w / sqrt(1 / (y_a + α_w) + 1 / (y_b + α_w))

Terms are ranked by z_w: a large z needs both a large change and enough evidence, so a word seen twice does
not outrank a word seen fifty times. The prior shrinks rare words toward their background rate.

Bounded memory. A :class:`TermCounts` keeps at most ``cap`` distinct terms. When it grows past that it
drops every term seen in at most ``floor`` posts, raising ``floor`` until it is back under ``cap / 2``
(lossy counting, as in Manku & Motwani 2002): a kept term's count is low by at most ``floor`` (the
``error`` attribute), a rare term may be forgotten, a frequent one never is. Rising terms need at least
``min_docs`` posts in the window they rise in, so the terms that matter survive the pruning.
"""

from __future__ import annotations

import html
import math
import re
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

# Scripts written without spaces between words: character bigrams instead of words.
_NOSPACE = (
    "\u0e00-\u0e7f"  # Thai
    "\u0e80-\u0eff"  # Lao
    "\u0f00-\u0fff"  # Tibetan
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u31f0-\u31ff"  # Katakana extensions
    "\u3400-\u4dbf"  # Han extension A
    "\u4e00-\u9fff"  # Han
    "\uf900-\ufaff"  # Han compatibility
)
_NOSPACE_RUN = re.compile(f"[{_NOSPACE}]+")
_DROP = re.compile(
    r"(?:https?://|www\.)\S+"  # URLs
    r"|\S+@\S+\.\w+"  # e-mail addresses
    r"|(?<!\w)@\w+",  # @handles
    re.IGNORECASE,
)


def _mark_ranges() -> str:
    """A character class body of every combining mark (Unicode category M): Python's ``\\w`` has none, and
    Devanagari, Bengali, Tamil… write vowels as marks, so without them their words would fall apart."""
    ranges, start, prev = [], -2, -2
    for c in range(sys.maxunicode + 1):
        if unicodedata.category(chr(c))[0] == "M":
            if c != prev + 1:
                if start >= 0:
                    ranges.append((start, prev))
                start = c
            prev = c
    ranges.append((start, prev))
    return "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)


_LETTER = f"(?:[^\\W\\d_]|[{_mark_ranges()}])"
# A word: letters of any script with their marks, inner apostrophes allowed; digits and _ split words.
_WORD = re.compile(f"{_LETTER}+(?:'{_LETTER}+)*")
# Sentence punctuation and removed URLs/handles separate phrases: no two-word phrase is taken across them.
_BREAK = re.compile(r"[.,!?;:()\[\]{}\"“”«»…&|/\\¿¡。、！？，]")
_SEPARATOR = "\x00"

_STOP_TEXT = """
a about above after again against all also am an and any are aren't as at be because been before being
below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during
each few for from further get got had hadn't has hasn't have haven't having he he's her here here's hers
herself him himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself just let's me
more most mustn't my myself no nor not now of off on once only or other ought our ours ourselves out over own
same shan't she she'd she'll she's should shouldn't so some such than that that's the their theirs them
themselves then there there's these they they'd they'll they're they've this those through to too under until
up very was wasn't we we'd we'll we're we've were weren't what what's when when's where where's which while
who who's whom why why's will with won't would wouldn't you you'd you'll you're you've your yours yourself
yourselves im ive dont doesnt didnt cant wont isnt arent wasnt thats theres youre ill id amp rt via u ur
yes yeah ok okay oh hey hi hello lol pls plz please thanks thank thx really still even one would could
de la que el en y a los del se las por un para con no una su al lo como más pero sus le ya o este sí porque
esta entre cuando muy sin sobre también me hasta hay donde quien desde todo nos durante todos uno les ni
contra otros ese eso ante ellos e esto mí antes algunos qué unos yo otro otras otra él tanto esa estos mucho
quienes nada muchos cual poco ella estar estas algunas algo nosotros mi mis tú te ti tu tus ellas es son
fue era está están he ha han hola gracias
le les des du un une et est à au aux ce ces dans en il ils elle elles je j'ai tu nous vous on ne pas plus
pour par sur avec qui que quoi mais ou où donc or ni car se sa son ses leur leurs mon ma mes ton ta tes
notre nos votre vos été être avoir ai as avons avez ont c'est n'est y très bonjour merci
der die das und ist nicht ich du er sie es wir ihr ein eine einen einem eines zu den dem des mit auf für von
im in an am aus bei nach vor über unter auch aber oder wenn dass wie was noch nur schon so sehr kann hat
habe haben sind war bin mein meine dein deine sein seine mir mich dir dich uns euch hallo danke bitte
o os as um uma uns umas e é de do da dos das em no na nos nas por para com não mas ou se que como mais muito
eu você ele ela eles elas meu minha seu sua isso isto esse essa este esta tem está são foi ser estar obrigado
il lo gli i una di del della dei delle da dal dalla in nel nella con su per tra fra e è non che ma o se come
più anche mi ti ci si sono ho hai ha abbiamo avete hanno ciao grazie
de het een en is van ik je jij hij zij wij het dat die niet met op aan voor in te er maar om ook als dan
nog wel geen bij uit naar dit was zijn heb heeft hebben mijn jouw hallo bedankt
och att det som en ett är på för med jag du han hon vi ni inte av till den har kan men om så eller var
og at det som en et er på for med jeg du han hun vi ikke av af til den har kan men om så eller var
i w z na do nie się że to jest jak ale o po co za od tak już mi mnie ty ten ta te
ve bir bu da de ile için ne mi mu çok daha ben sen o biz siz onlar ama gibi var yok
yang dan di ke dari ini itu dengan untuk tidak ada saya aku kamu apa juga akan sudah bisa
и в во не что он на я с со как а то все она так его но да ты к у же вы за бы по только ее мне было вот от
меня еще нет о из ему теперь когда даже ну ли если уже или ни быть был него до вас нибудь уж вам ведь там
потом себя ничего ей может они тут где есть надо ней для мы тебя их чем была сам чтоб без будто чего раз
тоже себе под будет ж тогда кто этот того потому этого какой совсем ним здесь этом один почти мой тем чтобы
это привет спасибо
في من على إلى عن مع هذا هذه ذلك التي الذي أن إن كان ما لا لم لن هل أو ثم و يا
"""
STOP_WORDS: frozenset[str] = frozenset(_STOP_TEXT.split())


def _split_words(text: str) -> list[str]:
    """The text's words and no-space-script runs in order, with separators where something was removed."""
    text = _DROP.sub(f" {_SEPARATOR} ", html.unescape(text).casefold().replace("’", "'"))
    text = _BREAK.sub(f" {_SEPARATOR} ", text)
    out: list[str] = []
    for chunk in text.split():
        if chunk == _SEPARATOR:
            out.append(_SEPARATOR)
            continue
        for word in _WORD.findall(chunk):
            pos = 0
            for m in _NOSPACE_RUN.finditer(word):  # split a word into spaced-script and no-space parts
                if m.start() > pos:
                    out.append(word[pos : m.start()])
                out.append(m.group())
                pos = m.end()
            if pos < len(word):
                out.append(word[pos:])
    return out


def terms(text: object, phrases: bool = True) -> set[str]:
    """The distinct terms of one post: words, two-word phrases, and character bigrams of no-space scripts."""
    if not isinstance(text, str) or not text:
        return set()
    found: set[str] = set()
    prev: str | None = None
    for w in _split_words(text):
        if w != _SEPARATOR and _NOSPACE_RUN.fullmatch(w):
            found.update(w[i : i + 2] for i in range(len(w) - 1))
            prev = None
            continue
        if w == _SEPARATOR or w in STOP_WORDS or len(w) < 2 or not any(c.isalpha() for c in w):
            prev = None
            continue
        w = w.strip("'")
        found.add(w)
        if phrases and prev is not None:
            found.add(f"{prev} {w}")
        prev = w
    return found


class TermCounts:
    """How many posts contain each term, in bounded memory (see the module's note on pruning)."""

    __slots__ = ("counts", "docs", "total", "cap", "floor")

    def __init__(self, cap: int = 50_000):
        self.counts: dict[str, int] = {}
        self.docs = 0
        self.total = 0  # sum of the counts ever added (the corpus size n of the statistic)
        self.cap = cap
        self.floor = 0  # counts at or below this may have been dropped: the most a kept count is low by

    @property
    def error(self) -> int:
        return self.floor

    def add(self, post_terms: Iterable[str]) -> None:
        c = self.counts
        self.docs += 1
        for t in post_terms:
            c[t] = c.get(t, 0) + 1
            self.total += 1
        if len(c) > self.cap:
            self._prune()

    def _prune(self) -> None:
        while len(self.counts) > self.cap // 2:
            self.floor += 1
            self.counts = {t: n for t, n in self.counts.items() if n > self.floor}

    def get(self, term: str) -> int:
        return self.counts.get(term, 0)


@dataclass
class RisingTerm:
    term: str
    z: float  # the log-odds z-score (Monroe et al. 2008)
    posts: int  # posts in the window that contain the term
    share: float  # of the window's posts
    before_share: float  # of the reference window's posts

    def label(self) -> str:
        return f"{self.term} ({self.posts}; {100 * self.before_share:.0f}% → {100 * self.share:.0f}%)"


def rising_terms(
    window: TermCounts,
    reference: TermCounts,
    background: TermCounts,
    top: int = 10,
    min_docs: int = 3,
    alpha0: float = 500.0,
    min_z: float = 2.0,
) -> list[RisingTerm]:
    """The ``top`` terms most over-represented in ``window`` against ``reference`` (z ≥ ``min_z``, in at least
    ``min_docs`` of the window's posts), by log-odds with an informative Dirichlet prior from ``background``."""
    if not window.docs or not window.counts:
        return []
    n_a, n_b = max(window.total, 1), max(reference.total, 1)
    bg_n = max(background.total, 1)
    unseen = max(background.floor, 0.5)  # a term absent from the background: at most what pruning could drop
    scored = []
    for term, y_a in window.counts.items():
        if y_a < min_docs:
            continue
        y_b = reference.get(term)
        a = alpha0 * max(background.get(term), unseen) / bg_n
        delta = math.log((y_a + a) / (n_a + alpha0 - y_a - a)) - math.log((y_b + a) / (n_b + alpha0 - y_b - a))
        z = delta / math.sqrt(1 / (y_a + a) + 1 / (y_b + a))
        if z >= min_z:
            scored.append((z, term, y_a, y_b))
    scored.sort(key=lambda x: (-x[0], x[1]))
    out: list[RisingTerm] = []
    for z, term, y_a, y_b in scored:
        found = RisingTerm(term, round(z, 2), y_a, round(y_a / window.docs, 4), round(y_b / max(reference.docs, 1), 4))
        same = _same_theme(term, y_a, out)
        if same is None:
            out.append(found)
        elif " " in term and " " not in out[same].term:
            out[same] = found  # the phrase says more than its word alone, in as many posts
        if len(out) == top:
            break
    return out


def _same_theme(term: str, posts: int, kept: list[RisingTerm]) -> int | None:
    """The index of a listed term that says the same thing: a word inside a listed phrase, or a phrase around
    a listed word, found in nearly the same posts (80% or more of the word's)."""
    words = term.split(" ")
    for i, k in enumerate(kept):
        k_words = k.term.split(" ")
        if len(k_words) > 1 and len(words) == 1 and term in k_words and k.posts >= 0.8 * posts:
            return i
        if len(words) > 1 and len(k_words) == 1 and k.term in words and posts >= 0.8 * k.posts:
            return i
    return None
