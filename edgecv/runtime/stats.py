"""Latency statistics over the per-call samples of a benchmark.

Definitions (exact, so they can be checked on a fake clock):

* p90, p95, p99: **nearest rank**: the smallest sample such that at least q % of the samples are
  less than or equal to it, i.e. the ⌈q/100 · N⌉-th smallest (numpy's ``inverted_cdf``). A tail
  percentile is then always a latency some call really had, never an interpolation between two
  calls, as in MLPerf LoadGen.
* median: the usual one (the mean of the two middle samples when N is even).
* std: the sample standard deviation (N − 1 in the denominator); 0 for a single sample.
* outliers: samples outside Tukey's fences, Q1 − 1.5·IQR and Q3 + 1.5·IQR, with quartiles
  interpolated linearly (the convention of matplotlib's box plots, so the report's plot shows the
  same points as outliers). They are counted and reported, never dropped: every statistic above
  includes them.
* unstable: p90 more than :data:`UNSTABLE_TAIL_RATIO` times the median, or a coefficient of
  variation (std / mean) above :data:`UNSTABLE_CV`. Such a run's figures depend on what else the
  machine was doing (other processes, frequency scaling, thermal throttling); a rerun may differ a lot.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from edgecv.records import known_fields

TAIL_PERCENTILES = (90, 95, 99)
TUKEY_K = 1.5
# A steady loop's p90 sits within a few tens of percent of its median; a tail this long means the
# machine interfered, so the headline figure cannot be trusted as is.
UNSTABLE_TAIL_RATIO = 1.5
UNSTABLE_CV = 0.5


def nearest_rank(sorted_samples: np.ndarray, q: float) -> float:
    return float(np.percentile(sorted_samples, q, method="inverted_cdf"))


@dataclass(frozen=True)
class LatencyStats:
    """Latency figures in milliseconds over ``count`` timed calls."""

    count: int
    min_ms: float
    mean_ms: float
    median_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    std_ms: float
    outliers_low: int
    outliers_high: int
    outlier_fences_ms: tuple[float, float]

    @property
    def outliers(self) -> int:
        return self.outliers_low + self.outliers_high

    @property
    def tail_ratio(self) -> float:
        """p90 over median."""
        return self.p90_ms / self.median_ms if self.median_ms > 0 else float("inf")

    @property
    def cv(self) -> float:
        """Coefficient of variation: std over mean."""
        return self.std_ms / self.mean_ms if self.mean_ms > 0 else 0.0

    @property
    def unstable(self) -> bool:
        return self.tail_ratio > UNSTABLE_TAIL_RATIO or self.cv > UNSTABLE_CV

    @classmethod
    def from_ns(cls, samples_ns: Sequence[int] | np.ndarray) -> "LatencyStats":
        ms = np.sort(np.asarray(samples_ns, dtype=np.float64)) / 1e6
        if ms.size == 0:
            raise ValueError("no latency samples")
        q1, q3 = np.percentile(ms, [25, 75])
        low, high = q1 - TUKEY_K * (q3 - q1), q3 + TUKEY_K * (q3 - q1)
        return cls(
            count=int(ms.size),
            min_ms=float(ms[0]),
            mean_ms=float(ms.mean()),
            median_ms=float(np.median(ms)),
            p90_ms=nearest_rank(ms, 90),
            p95_ms=nearest_rank(ms, 95),
            p99_ms=nearest_rank(ms, 99),
            max_ms=float(ms[-1]),
            std_ms=float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
            outliers_low=int((ms < low).sum()),
            outliers_high=int((ms > high).sum()),
            outlier_fences_ms=(float(low), float(high)),
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["outlier_fences_ms"] = list(self.outlier_fences_ms)
        d["outliers"] = self.outliers
        d["p90_over_median"] = round(self.tail_ratio, 3)
        d["cv"] = round(self.cv, 3)
        d["unstable"] = self.unstable
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LatencyStats":
        kw = known_fields(cls, d)
        kw["outlier_fences_ms"] = tuple(kw.get("outlier_fences_ms", (float("nan"), float("nan"))))
        return cls(**kw)
