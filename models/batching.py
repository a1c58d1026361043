"""Grouping posts into onnxruntime runs.

Every post in a run is padded to the run's longest post, and every run has a fixed cost (graph dispatch, thread
wake-up). Social posts vary a lot in length, so a run of posts in arrival order (what the service's adaptive
batcher hands over) is mostly padding. :func:`plan_runs` sorts a batch by length and cuts it where the modelled
cost (``overhead_tokens`` per run + padded tokens) is least, by dynamic programming, keeping runs to
``max_tokens`` padded tokens, past which the cost per token rises again. The overhead depends on the machine,
not the model: :func:`overhead_tokens_from_timings` turns two timed runs into the figure for the machine at hand,
and the service measures it at start-up (:meth:`earful.models.predictor.Predictor.measure_run_cost`). The
measurements behind the defaults: docs/performance.md, "Batching".
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
