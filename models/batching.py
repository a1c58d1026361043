"""Grouping posts into onnxruntime runs.

Every post in a run is padded to the run's longest post, and every run has a
fixed cost (graph dispatch, thread wake-up). Social posts vary a lot in length
(median ~21 tokens, 90th percentile ~57 on data/validation), so a run of 32
posts taken in arrival order is mostly padding: on this 2-core machine it gave
~120 posts/s where the same posts length-sorted give ~450. The service meets
exactly that case, since its adaptive batcher hands over posts in arrival order.

:func:`plan_runs` sorts a batch by length and cuts it where the modelled cost
(``overhead_tokens`` per run + padded tokens) is least, by dynamic programming.
Runs are also kept to ``max_tokens`` padded tokens, because past ~512 tokens a
run's cost per token rises again on this machine (caches; attention grows with
width). The constants were measured with the default bundle on 1,000 posts of
data/validation: a run costs ~2.5 ms + ~65 µs per padded token, hence 32 tokens
of overhead; ``max_tokens=512`` was fastest among 256 to 2,048 both for
batches of 32 arrival-order posts and for 1,000 posts at once.

The overhead is a property of the machine, not of the model: on a 2-core AMD
EPYC without AVX-512/VNNI (2026-12-02) the same bundle spends ~0.57 ms per token,
nine times the figure above, and a run's fixed cost is only ~5 tokens' worth,
so splitting as if it were 32 leaves small batches padded to their longest post
(8-post calls ran 5-8% slower in one thread). :func:`overhead_tokens_from_timings`
turns two timed runs into the figure for the machine at hand; the service
measures it at start-up (see :meth:`earful.models.predictor.Predictor.measure_run_cost`).
"""

from __future__ import annotations

import numpy as np

RUN_OVERHEAD_TOKENS = 32
MAX_RUN_TOKENS = 512
#: The measured overhead is kept within these bounds: a noisy timing must not
#: make every post its own run, nor one run of everything.
OVERHEAD_TOKENS_RANGE = (1, 128)


def overhead_tokens_from_timings(small: tuple[int, float], large: tuple[int, float]) -> int:
    """A run's fixed cost in padded tokens, from two runs of (padded tokens, seconds).

    Fits ``seconds = fixed + per_token * tokens`` through both points and returns
    ``fixed / per_token``, rounded and clamped to :data:`OVERHEAD_TOKENS_RANGE`;
    timings that give no positive per-token cost give the default."""
    (n_small, t_small), (n_large, t_large) = small, large
    if n_large <= n_small:
        raise ValueError(f"the large run must have more tokens than the small one, got {n_large} <= {n_small}")
    per_token = (t_large - t_small) / (n_large - n_small)
    if per_token <= 0:
        return RUN_OVERHEAD_TOKENS
    lo, hi = OVERHEAD_TOKENS_RANGE
    return int(min(hi, max(lo, round((t_small - per_token * n_small) / per_token))))


def plan_runs(
    lengths: list[int] | np.ndarray,
    max_posts: int,
    max_tokens: int = MAX_RUN_TOKENS,
    overhead_tokens: int = RUN_OVERHEAD_TOKENS,
) -> list[np.ndarray]:
    """Indices into ``lengths``, one array per run, each in ascending length.

    Every index appears in exactly one run. A run holds at most ``max_posts``
    posts and, unless it is a single post, at most ``max_tokens`` padded tokens."""
    if max_posts < 1:
        raise ValueError(f"max_posts must be at least 1, got {max_posts}")
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    sorted_len = lengths[order]
    n = len(order)
    best = np.zeros(n + 1)  # best[j]: least cost of the first j sorted posts
    start = np.zeros(n + 1, dtype=np.int64)  # start[j]: where the last run of that plan begins
    for j in range(1, n + 1):
        i = np.arange(max(0, j - max_posts), j)
        padded = (j - i) * sorted_len[j - 1]
        cost = best[i] + overhead_tokens + padded
        cost[(padded > max_tokens) & (i < j - 1)] = np.inf
        k = int(np.argmin(cost))
        best[j], start[j] = cost[k], i[k]
    runs = []
    j = n
    while j > 0:
        runs.append(order[start[j] : j])
        j = start[j]
    return runs[::-1]
