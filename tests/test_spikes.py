"""Spike detection: shares not counts, the day-of-week pattern, the warm-up, the dense reporting window."""

import datetime as dt

import numpy as np

from earful.batch.spikes import SpikeRule, dense_window, detect, flag_days

START = dt.date(2024, 1, 1)  # a Monday


def _days(n):
    return [(START + dt.timedelta(i)).isoformat() for i in range(n)]


def _series(n, share=0.2, volume=200, seed=0):
    rng = np.random.default_rng(seed)
    posts = rng.poisson(volume, n)
    return posts, rng.binomial(posts, share)


def test_a_planted_share_spike_is_found_and_noise_is_not():
    posts, product = _series(60)
    product[40] = int(posts[40] * 0.45)  # more than twice the usual share
    found = detect(_days(60), {"posts": posts.tolist(), "product": product.tolist()}, ("product",), SpikeRule())
    assert [(s.series, s.start) for s in found] == [("product", _days(60)[40])]
    assert found[0].z >= 3.5 and found[0].tests == ["share"]


def test_volume_ramp_up_at_the_start_of_collection_is_not_a_spike():
    posts, product = _series(60, seed=1)
    ramp = np.minimum(1.0, (np.arange(60) + 1) / 10)  # collection ramps up over ten days
    posts = np.maximum(1, (posts * ramp).astype(int))
    product = np.random.default_rng(2).binomial(posts, 0.2)
    assert detect(_days(60), {"posts": posts.tolist(), "product": product.tolist()}, ("product",), SpikeRule()) == []


def test_a_weekly_pattern_is_not_a_spike_but_the_old_count_rule_would_call_it_one():
    days = _days(70)
    posts, _ = _series(70, seed=3)
    weekend = np.array([dt.date.fromisoformat(d).weekday() >= 5 for d in days])
    share = np.where(weekend, 0.35, 0.15)  # product complaints are a bigger part of weekend posts
    product = np.random.default_rng(4).binomial(posts, share)
    assert detect(days, {"posts": posts.tolist(), "product": product.tolist()}, ("product",), SpikeRule()) == []
    rule = SpikeRule(weekday_prior_weeks=1e12)  # a prior this strong removes the day-of-week adjustment
    assert detect(days, {"posts": posts.tolist(), "product": product.tolist()}, ("product",), rule)


def test_warm_up_days_are_not_judged_and_counts_need_a_full_baseline():
    posts, product = _series(40, seed=5)
    product[3] = posts[3]  # inside the warm-up: not judged
    assert flag_days(_days(40), product.tolist(), posts.tolist(), SpikeRule())[:1] == []
    # a count that doubles with its share unchanged (everything doubled) is judged only with a full window
    posts, product = _series(40, seed=6)
    posts[20], product[20] = posts[20] * 3, product[20] * 3
    assert flag_days(_days(40), product.tolist(), posts.tolist(), SpikeRule(window=28)) == []
    posts, product = _series(60, seed=6)
    posts[50], product[50] = posts[50] * 3, product[50] * 3
    flags = flag_days(_days(60), product.tolist(), posts.tolist(), SpikeRule(window=28))
    assert [(f.day, f.test) for f in flags] == [(_days(60)[50], "count")]


def test_consecutive_flagged_days_are_one_spike():
    posts, product = _series(60, seed=7)
    for i in (40, 41, 42, 44):
        product[i] = int(posts[i] * 0.5)
    found = detect(_days(60), {"posts": posts.tolist(), "product": product.tolist()}, ("product",), SpikeRule())
    assert [(s.start, s.end, len(s.days)) for s in found] == [(_days(60)[40], _days(60)[44], 4)]


def test_dense_window_drops_stray_old_posts_and_partial_edge_days():
    daily = {d: 250 for d in _days(60)}
    daily[_days(60)[0]] = 20  # collection started in the evening
    daily["2019-05-01"] = 1
    daily["2021-07-04"] = 2
    assert dense_window(daily) == (_days(60)[1], _days(60)[-1])
    # a quiet but steady start is part of the data
    steady = {d: (100 if i < 14 else 250) for i, d in enumerate(_days(60))}
    assert dense_window(steady) == (_days(60)[0], _days(60)[-1])
