"""Small numerical helpers (pure ``math``): negative-binomial tails and Beta intervals.

>>> round(nb_log_tail(0, mean=1.0, size=1.0), 6)   # P(N >= 0) = 1
0.0
>>> round(math.exp(nb_log_tail(1, mean=1.0, size=1e9)), 4)  # ≈ Poisson(1): 1 - e^-1
0.6321
>>> round(math.exp(nb_log_tail(2, mean=1.0, size=1.0)), 4)  # geometric(1/2): 1/4
0.25
"""

from __future__ import annotations

import math

__all__ = ["beta_interval", "log_betainc", "nb_interval", "nb_log_tail"]

_TINY = 1e-300


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for the incomplete beta function (modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-12:
            break
    return h


def log_betainc(a: float, b: float, x: float) -> float:
    """log of the regularised incomplete beta function I_x(a, b), accurate for tiny values.

    >>> round(math.exp(log_betainc(2.0, 3.0, 0.4)), 6)
    0.5248
    """
    if x <= 0.0:
        return -math.inf
    if x >= 1.0:
        return 0.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return log_front + math.log(_betacf(a, b, x)) - math.log(a)
    upper = math.exp(log_front + math.log(_betacf(b, a, 1.0 - x)) - math.log(b))
    return math.log1p(-upper) if upper < 1.0 else -745.0


def nb_log_tail(n: int, *, mean: float, size: float) -> float:
    """log P(N >= n) for a negative binomial with the given mean and size (1/over-dispersion).

    Variance is ``mean + mean**2 / size``; ``size -> inf`` is Poisson.
    """
    if n <= 0:
        return 0.0
    mean = max(mean, 1e-12)
    size = min(max(size, 1e-6), 1e9)
    p = mean / (mean + size)  # "success" probability of the count
    return min(0.0, log_betainc(float(n), size, p))


def nb_interval(mean: float, size: float, level: float = 0.9) -> tuple[float, float]:
    """Central interval of the negative binomial (by summing the pmf; counts are small)."""
    lo_q, hi_q = (1.0 - level) / 2.0, (1.0 + level) / 2.0
    size = min(max(size, 1e-6), 1e9)
    p = mean / (mean + size) if mean > 0 else 0.0
    if p <= 0.0:
        return 0.0, 0.0
    log_pmf = size * math.log1p(-p)  # P(N = 0)
    cdf, k, lo = 0.0, 0, None
    while k < 100_000:
        cdf += math.exp(log_pmf)
        if lo is None and cdf >= lo_q:
            lo = k
        if cdf >= hi_q:
            return float(lo if lo is not None else k), float(k)
        log_pmf += math.log((k + size) / (k + 1) * p)
        k += 1
    return float(lo or 0), float(k)


def beta_interval(a: float, b: float, level: float = 0.9) -> tuple[float, float]:
    """Approximate central interval of Beta(a, b) (normal approximation, clipped to [0, 1]).

    >>> [round(v, 3) for v in beta_interval(2.0, 18.0)]
    [0.0, 0.208]
    """
    mean = a / (a + b)
    sd = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1.0)))
    z = 1.6449 if level == 0.9 else 1.96
    return max(0.0, mean - z * sd), min(1.0, mean + z * sd)
