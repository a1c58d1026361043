"""Terms for "what is rising": tokenising across scripts, the log-odds statistic, bounded counters."""

from earful.batch.terms import TermCounts, rising_terms, terms


def test_handles_urls_and_stop_words_are_left_out_and_phrases_kept():
    got = terms("@SpotifyCares my Premium account keeps logging me out!! https://t.co/xyz &amp; #shuffle")
    assert {"premium", "account", "premium account", "logging", "shuffle"} <= got
    assert not any("spotifycares" in t or "http" in t or "t.co" in t for t in got)
    assert not {"my", "me", "out", "amp"} & got
    assert "out shuffle" not in got  # no phrase across punctuation or a removed URL


def test_scripts_without_spaces_give_character_bigrams_and_marks_stay_in_words():
    assert {"注文", "商品", "届か"} <= terms("注文した商品が届かない")
    assert "注" not in terms("注文した商品が届かない")
    hindi = terms("मेरा ऑर्डर नहीं आया")
    assert {"ऑर्डर", "नहीं", "ऑर्डर नहीं"} <= hindi  # vowel signs are marks: the words stay whole
    assert {"pedido", "llegó"} <= terms("Mi pedido no llegó, qué pasa?")
    assert "no" not in terms("Mi pedido no llegó")
    assert terms(None) == set() and terms("") == set() and terms("123 456 !!") == set()


def _corpus(posts):
    c = TermCounts()
    for p in posts:
        c.add(terms(p))
    return c


def test_a_planted_theme_rises_and_steady_or_rare_words_do_not():
    before = ["the app crashes on start"] * 40 + ["cannot log in to my account"] * 40 + ["love the playlist"] * 20
    now = ["the app crashes on start"] * 40 + ["charged twice for my order"] * 30 + ["love the playlist"] * 20
    now += ["weird bluetooth glitch"]  # once: not evidence
    window, reference = _corpus(now), _corpus(before)
    background = _corpus(before + now)
    found = rising_terms(window, reference, background)
    names = [t.term for t in found]
    assert names[0] in {"charged twice", "charged", "twice"}
    assert "crashes" not in names and "app" not in names  # as common as before
    assert "bluetooth" not in names  # in one post only
    top = found[0]
    assert top.posts == 30 and top.before_share == 0 and top.z > 2
    # a phrase and its words say the same thing: listed once
    assert len({"charged twice", "charged", "twice"} & set(names)) == 1


def test_counts_stay_under_the_cap_and_frequent_terms_survive():
    c = TermCounts(cap=1000)
    for i in range(20_000):
        c.add({f"rare{i:05d}".replace("0", "o").replace("1", "l"), "outage"})
    assert len(c.counts) <= 1000
    assert c.get("outage") >= 20_000 - c.error and c.error >= 1
    assert c.docs == 20_000
