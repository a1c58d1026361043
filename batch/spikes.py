"""Early-warning spikes a team lead can trust: which days a complaint type (or negative sentiment) rose.

Reporting window. Archives often hold a few stray old posts and a partial first and last day of collection;
judged as they are, the stray posts stretch the time axis over years and the ramp-up of collection looks like
every series spiking at once. :func:`dense_window` picks the span where the data is dense: the shortest run
of days holding ``core`` (95%) of the dated posts, widened while the neighbouring week still averages at
least ``edge`` (25%) of the median day inside, then trimmed of partial edge days below that level.
``--since``/``--until`` override it; the report says how many posts fell outside.

Share test (every day after the warm-up). A type's *share* of the day's posts does not jump when volume
does. For series k on day d with n_d posts of which c_d are k: the expected share is the baseline level
times the day-of-week factor, e_d = f(wd(d)) · Σ c_b / Σ n_b f(wd(b)) over the baseline days b (the
previous ``window`` days, days already flagged for k left out while enough remain). The day-of-week factor
f is the median of k's daily share on that weekday over the reporting window relative to the median of all
days, shrunk toward 1 by ``weekday_prior_weeks`` weeks without a pattern (medians: a spike does not bend
it). The test is quasi-binomial:

    z = (c_d − n_d e_d) / sqrt(φ · n_d e_d (1 − e_d))

with φ ≥ 1 the overdispersion of the baseline days (median squared Pearson residual / 0.455, the median of
χ²₁), so a series whose share wanders day to day needs a bigger jump. A day needs at least ``min_history``
baseline days with ``min_day_posts`` posts or more: the first days of the window are its warm-up.

Count test (only with a full baseline). A type's count can rise with its share unchanged when everything
rises; the count is judged only once ``window`` baseline days exist: expected count = median over the
baseline of c_b / f(wd(b)), times f(wd(d)) (f from the daily counts this time), and z is quasi-Poisson with
the same kind of φ.

A day is flagged when a test gives z ≥ ``z_threshold``, the count is at least ``min_count`` and at least
``min_ratio`` times what was expected. Flagged days of one series no more than a day apart form one spike
(an *episode*: a five-day rise is one alarm with five days, not five alarms).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

CHI2_1_MEDIAN = 0.4549


@dataclass(frozen=True)
class SpikeRule:
    window: int = 28
    min_history: int = 7
    z_threshold: float = 3.5
    min_count: int = 5
    min_ratio: float = 1.5
    min_day_posts: int = 10
    weekday_prior_weeks: float = 2.0

    def describe(self) -> str:
        return (
            f"a day is flagged when a type's share of the day's posts (or, once {self.window} days of baseline "
            f"exist, its count) is at least {self.min_ratio:g}× what the previous {self.window} days predict for "
            f"that weekday, with z ≥ {self.z_threshold:g} (quasi-binomial/quasi-Poisson, overdispersion from "
            f"the baseline) and at least {self.min_count} posts; the first {self.min_history} days are warm-up; "
            f"days with under {self.min_day_posts} posts are not judged"
        )


@dataclass
class Window:
    start: str
    end: str
    how: str  # "dense" (chosen from the data), "given" (--since/--until) or "all"
    before: int = 0  # dated posts before the window
    after: int = 0  # dated posts after it
    first_post: str = ""
    last_post: str = ""


@dataclass
class DayFlag:
    day: str
    test: str  # "share" or "count"
    count: int
    posts: int
    expected: float  # expected count
    z: float
    expected_share: float = 0.0  # what the share test expected, whichever test flagged the day


@dataclass
class Spike:
    series: str
    start: str
    end: str
    peak: str
    z: float  # at the peak day
    count: int  # posts of the series over the spike's days
    posts: int  # all posts over those days
    expected: float  # expected count of the series over those days
    baseline_share: float
    tests: list[str]
    days: list[DayFlag] = field(default_factory=list)
    terms: list[dict] = field(default_factory=list)  # rising terms (earful.batch.terms.RisingTerm as dicts)
    common_terms: list = field(default_factory=list)  # [term, posts] most used, when no term rose
    examples: list[dict] = field(default_factory=list)

    @property
    def day(self) -> str:
        return self.peak

    @property
    def share(self) -> float:
        return self.count / self.posts if self.posts else 0.0


def _iso(d: dt.date) -> str:
    return d.isoformat()


def dense_window(daily_posts: dict[str, int], core: float = 0.95, edge: float = 0.25) -> tuple[str, str]:
    """The first and last day of the span where the data is dense (see the module's note)."""
    if not daily_posts:
        raise ValueError("no dated posts")
    days = sorted(daily_posts)
    ordinals = np.array([dt.date.fromisoformat(d).toordinal() for d in days])
    counts = np.array([daily_posts[d] for d in days], dtype=float)
    total = counts.sum()
    # shortest run of calendar days holding `core` of the posts (two pointers over the dated days)
    best, j, acc = (ordinals[0], ordinals[-1]), 0, 0.0
    for i in range(len(days)):
        acc += counts[i]
        while acc - counts[j] >= core * total:
            acc -= counts[j]
            j += 1
        if acc >= core * total and ordinals[i] - ordinals[j] < best[1] - best[0]:
            best = (ordinals[j], ordinals[i])
    lo, hi = best
    by_ord = dict(zip(ordinals.tolist(), counts.tolist(), strict=True))
    inside = [by_ord.get(o, 0.0) for o in range(lo, hi + 1)]
    level = edge * float(np.median(inside))

    def week_mean(a: int, b: int) -> float:
        return sum(by_ord.get(o, 0.0) for o in range(a, b + 1)) / (b - a + 1)

    first, last = int(ordinals[0]), int(ordinals[-1])
    while lo > first and week_mean(max(first, lo - 7), lo - 1) >= level:
        lo = max(first, lo - 7)
    while hi < last and week_mean(hi + 1, min(last, hi + 7)) >= level:
        hi = min(last, hi + 7)
    lo, hi = max(lo, first), min(hi, last)
    while lo < hi and by_ord.get(lo, 0.0) < level:  # partial first/last days of collection
        lo += 1
    while hi > lo and by_ord.get(hi, 0.0) < level:
        hi -= 1
    return _iso(dt.date.fromordinal(lo)), _iso(dt.date.fromordinal(hi))


def weekday_factors(days: list[str], counts: np.ndarray, totals: np.ndarray | None, prior_weeks: float) -> np.ndarray:
    """Seven multipliers, Monday first: the median on each weekday of the series' daily share (or, without
    totals, its daily count) over the median of all days, shrunk toward 1 as if ``prior_weeks`` more weeks had
    shown no pattern. Medians, so a spike does not bend the pattern it is judged against."""
    wd = np.array([dt.date.fromisoformat(d).weekday() for d in days])
    values = counts / np.maximum(totals, 1) if totals is not None else counts.astype(float)
    f = np.ones(7)
    overall = float(np.median(values)) if len(values) else 0.0
    if overall <= 0:
        return f
    for w in range(7):
        m = wd == w
        if m.any():
            k = float(m.sum())
            f[w] = (k * float(np.median(values[m])) / overall + prior_weeks) / (k + prior_weeks)
    return f


def _dispersion(obs: np.ndarray, exp: np.ndarray, var: np.ndarray) -> float:
    ok = var > 0
    if not ok.any():
        return 1.0
    r2 = (obs[ok] - exp[ok]) ** 2 / var[ok]
    return max(1.0, float(np.median(r2)) / CHI2_1_MEDIAN)


def flag_days(days: list[str], counts: list[int], totals: list[int], rule: SpikeRule) -> list[DayFlag]:
    """Days whose share (or, with a full baseline, count) of one series is abnormally high."""
    c = np.asarray(counts, dtype=float)
    n = np.asarray(totals, dtype=float)
    judged = n >= rule.min_day_posts
    if not judged.any():
        return []
    wd = np.array([dt.date.fromisoformat(d).weekday() for d in days])
    f_share = weekday_factors(
        [d for d, j in zip(days, judged, strict=True) if j], c[judged], n[judged], rule.weekday_prior_weeks
    )
    f_count = weekday_factors(
        [d for d, j in zip(days, judged, strict=True) if j], c[judged], None, rule.weekday_prior_weeks
    )
    flagged = np.zeros(len(days), dtype=bool)
    out: list[DayFlag] = []
    for i in range(len(days)):
        if not judged[i]:
            continue
        idx = np.array([b for b in range(max(0, i - rule.window), i) if judged[b]], dtype=int)
        clean = idx[~flagged[idx]] if len(idx) else idx
        base = clean if len(clean) >= rule.min_history else idx
        if len(base) < rule.min_history:
            continue
        best: DayFlag | None = None
        # share: quasi-binomial against the weekday-adjusted baseline level
        fb = f_share[wd[base]]
        level = c[base].sum() / max((n[base] * fb).sum(), 1e-9)
        e_b = np.clip(level * fb, 1e-6, 1 - 1e-6)
        phi = _dispersion(c[base], n[base] * e_b, n[base] * e_b * (1 - e_b))
        e = float(np.clip(level * f_share[wd[i]], 1e-6, 1 - 1e-6))
        exp_c = n[i] * e
        z = (c[i] - exp_c) / np.sqrt(phi * exp_c * (1 - e))
        if z >= rule.z_threshold and c[i] >= rule.min_count and c[i] >= rule.min_ratio * exp_c:
            best = DayFlag(days[i], "share", int(c[i]), int(n[i]), round(float(exp_c), 1), round(float(z), 2), e)
        # count: quasi-Poisson, only with a full baseline window
        if len(idx) >= rule.window:
            level_c = float(np.median(c[base] / f_count[wd[base]]))
            exp_b = np.maximum(level_c * f_count[wd[base]], 0.5)
            phi_c = _dispersion(c[base], exp_b, exp_b)
            exp_n = max(level_c * f_count[wd[i]], 0.5)
            zc = (c[i] - exp_n) / np.sqrt(phi_c * exp_n)
            if zc >= rule.z_threshold and c[i] >= rule.min_count and c[i] >= rule.min_ratio * exp_n:
                if best is None or zc > best.z:
                    best = DayFlag(
                        days[i], "count", int(c[i]), int(n[i]), round(float(exp_n), 1), round(float(zc), 2), e
                    )
        if best is not None:
            flagged[i] = True
            out.append(best)
    return out


def episodes(series: str, flags: list[DayFlag], gap: int = 1) -> list[Spike]:
    """Flagged days of one series no more than ``gap`` days apart, as one spike each run."""
    runs: list[list[DayFlag]] = []
    for f in flags:
        if runs and (dt.date.fromisoformat(f.day) - dt.date.fromisoformat(runs[-1][-1].day)).days <= gap + 1:
            runs[-1].append(f)
        else:
            runs.append([f])
    out = []
    for run in runs:
        peak = max(run, key=lambda f: f.z)
        count = sum(f.count for f in run)
        posts = sum(f.posts for f in run)
        expected = sum(f.expected for f in run)
        base_share = sum(f.expected_share * f.posts for f in run) / max(posts, 1)
        out.append(
            Spike(
                series=series,
                start=run[0].day,
                end=run[-1].day,
                peak=peak.day,
                z=peak.z,
                count=count,
                posts=posts,
                expected=round(expected, 1),
                baseline_share=round(base_share, 4),
                tests=sorted({f.test for f in run}),
                days=run,
            )
        )
    return out


def detect(
    days: list[str], daily: dict[str, list[int]], series: tuple[str, ...], rule: SpikeRule, total: str = "posts"
) -> list[Spike]:
    """Spikes of each series (a list of daily counts in ``daily``, aligned with ``days``; ``daily[total]`` the
    day's posts), strongest first."""
    found: list[Spike] = []
    for name in series:
        flags = flag_days(days, daily[name], daily[total], rule)
        found += episodes(name, flags)
    return sorted(found, key=lambda s: (-s.z, s.start, s.series))
