import itertools

import numpy as np
import pytest

from earful.models.batching import overhead_tokens_from_timings, plan_runs


def _cost(runs, lengths, overhead):
    return sum(overhead + len(r) * max(lengths[i] for i in r) for r in runs)


def test_every_post_once_within_limits():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 129, size=300)
    runs = plan_runs(lengths, max_posts=16, max_tokens=512)
    assert sorted(np.concatenate(runs).tolist()) == list(range(300))
    for r in runs:
        assert 1 <= len(r) <= 16
        assert len(r) == 1 or len(r) * lengths[r].max() <= 512
        assert np.all(np.diff(lengths[r]) >= 0)


def test_short_and_long_posts_go_to_separate_runs():
    lengths = [120, 6, 7, 6, 5, 118, 6]
    runs = plan_runs(lengths, max_posts=64)
    assert [sorted(r.tolist()) for r in runs] == [[1, 2, 3, 4, 6], [0, 5]]


def test_single_post_longer_than_the_token_budget_is_its_own_run():
    assert [r.tolist() for r in plan_runs([600, 4], max_posts=8, max_tokens=512)] == [[1], [0]]


@pytest.mark.parametrize("seed", range(5))
def test_plan_is_the_cheapest_split_of_the_sorted_posts(seed):
    lengths = np.random.default_rng(seed).integers(2, 80, size=8)
    runs = plan_runs(lengths, max_posts=4, max_tokens=200, overhead_tokens=20)
    order = np.argsort(lengths, kind="stable")
    best = np.inf
    for cuts in itertools.product([0, 1], repeat=len(order) - 1):  # every split of the sorted order into runs
        bounds = [0] + [i + 1 for i, c in enumerate(cuts) if c] + [len(order)]
        candidate = [order[a:b] for a, b in itertools.pairwise(bounds)]
        if all(len(r) <= 4 and (len(r) == 1 or len(r) * lengths[r].max() <= 200) for r in candidate):
            best = min(best, _cost(candidate, lengths, 20))
    assert _cost(runs, lengths, 20) == best


def test_rejects_a_batch_size_below_one():
    with pytest.raises(ValueError, match="max_posts"):
        plan_runs([3], max_posts=0)


def test_empty_input_gives_no_runs():
    assert plan_runs([], max_posts=4) == []


def test_overhead_is_the_fixed_cost_over_the_per_token_cost():
    fixed, per_token = 2.5e-3, 65e-6  # the default bundle on the machine the constants were measured on
    small, large = (64, fixed + 64 * per_token), (256, fixed + 256 * per_token)
    assert overhead_tokens_from_timings(small, large) == 38


@pytest.mark.parametrize(
    "small, large, expected",
    [
        ((64, 0.030), (256, 0.140), 1),  # a run costs nothing before its tokens (clamped up to 1)
        ((64, 1.000), (256, 1.001), 128),  # tokens are nearly free: clamped down
        ((64, 0.050), (256, 0.040), 32),  # noise gave a negative per-token cost: the default
    ],
)
def test_overhead_is_clamped_and_falls_back_on_nonsense(small, large, expected):
    assert overhead_tokens_from_timings(small, large) == expected


def test_overhead_needs_a_larger_second_run():
    with pytest.raises(ValueError, match="more tokens"):
        overhead_tokens_from_timings((256, 0.1), (64, 0.03))
