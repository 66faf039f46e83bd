"""The distributions behind the drift tests' p-values, in numpy and the standard library.

    kolmogorov_sf(y)      P(K > y): Kolmogorov's limit distribution of sqrt(n)·D_n
    ks_sf(n, d)           P(D_n >= d): the two-sided one-sample Kolmogorov–Smirnov statistic,
                          exact for n (scipy's ``kstwo.sf``)
    smirnov_sf(n, d)      P(D_n+ >= d): the one-sided statistic (scipy's ``special.smirnov``)
    chi2_sf(x, df)        P(X > x) for chi-squared with ``df`` degrees of freedom
    gamma_q(a, x)         the regularized upper incomplete gamma function Q(a, x)

The monitor judges drift in every install with these, a serving one (no scipy) as the full
one, so that a verdict never depends on what is installed. tests/stats/test_distributions.py
holds each against scipy over a grid: a relative difference below 1e-10 (the p-values a
verdict reads, down to 1e-300), in practice below 1e-12.

Pure: numpy and math, no files, no clock; each function is a few microseconds to a few
hundred (the exact KS distribution of n = 1000 at its costliest).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["chi2_sf", "gamma_q", "kolmogorov_sf", "ks_sf", "smirnov_sf"]

_EPS = 2.0**-53  # Cephes' MACHEP: the series and fractions stop at this relative change
_MAX_LOG = 709.782712893384  # log of the largest double
_BIG = 2.0**52  # the continued fraction's terms are scaled back below this


# ------------------------------------------------------------------------------ Kolmogorov


def kolmogorov_sf(y: float) -> float:
    """P(K > y), K the limit of sqrt(n)·D_n (scipy's ``special.kolmogorov``).

    Two series, each fast where the other is slow: 2·Σ (-1)^(k-1)·exp(-2k²y²) for y above 0.82
    (five terms reach 1e-16 there), and for smaller y one minus the Jacobi theta form of the
    CDF, sqrt(2π)/y·Σ exp(-(2k-1)²π²/(8y²)) (three terms), as Cephes does.

    >>> round(kolmogorov_sf(1.3581), 4)
    0.05
    """
    if math.isnan(y):
        return math.nan
    if y <= math.pi / math.sqrt(708 * 8):  # the CDF underflows: exp(-pi^2/8y^2) < 1e-307
        return 1.0
    if y <= 0.82:
        log_u8 = -math.pi * math.pi / (y * y)  # log(u^8), u = exp(-pi^2 / 8y^2)
        u8 = math.exp(log_u8)
        # 1 + u^8 + u^24 + u^48: the odd squares minus one
        theta = 1.0 + u8 * (1.0 + u8 * u8 * (1.0 + u8**3))
        cdf = math.exp(log_u8 / 8 + math.log(math.sqrt(2 * math.pi) / y)) * theta
        return min(max(1.0 - cdf, 0.0), 1.0)
    v = math.exp(-2.0 * y * y)
    # 2v(1 - v^3(1 - v^5(1 - v^7(1 - v^9(1 - v^11))))): v^(k^2) with alternating signs
    total = 1.0
    for power in (11, 9, 7, 5, 3):
        total = 1.0 - v**power * total
    return min(max(2.0 * v * total, 0.0), 1.0)


# ------------------------------------------------------------------------ chi-squared, gamma


def chi2_sf(x: float, df: float) -> float:
    """P(X > x) for X chi-squared with ``df`` degrees of freedom: Q(df/2, x/2).

    >>> round(chi2_sf(3.841458820694124, 1), 6)
    0.05
    """
    if x <= 0.0:
        return 1.0
    return gamma_q(df / 2.0, x / 2.0)


def gamma_q(a: float, x: float) -> float:
    """The regularized upper incomplete gamma function Q(a, x) = Γ(a, x)/Γ(a), as Cephes'
    ``igamc`` computes it: below ``x = max(a, 1)`` one minus the power series of P(a, x),
    above it Legendre's continued fraction for Q itself (accurate however small Q is)."""
    if math.isnan(a) or math.isnan(x) or a <= 0.0 or x < 0.0:
        return math.nan
    if x == 0.0:
        return 1.0
    if math.isinf(x):
        return 0.0
    if x < 1.0 or x < a:
        return 1.0 - _gamma_p_series(a, x)
    return _gamma_q_fraction(a, x)


def _gamma_p_series(a: float, x: float) -> float:
    """P(a, x) = x^a·e^-x/Γ(a+1)·Σ x^k/((a+1)...(a+k)), for x below max(a, 1)."""
    log_front = a * math.log(x) - x - math.lgamma(a)
    if log_front < -_MAX_LOG:
        return 0.0
    term, total, r = 1.0, 1.0, a
    while True:
        r += 1.0
        term *= x / r
        total += term
        if term <= total * _EPS:
            return total * math.exp(log_front) / a


def _gamma_q_fraction(a: float, x: float) -> float:
    """Q(a, x) by the continued fraction of Γ(a, x) (Cephes' igamc), for x above max(a, 1)."""
    log_front = a * math.log(x) - x - math.lgamma(a)
    if log_front < -_MAX_LOG:
        return 0.0
    y, z, c = 1.0 - a, x + 2.0 - a, 0.0
    pkm2, qkm2, pkm1, qkm1 = 1.0, x, x + 1.0, z * x
    answer = pkm1 / qkm1
    while True:
        c += 1.0
        y += 1.0
        z += 2.0
        yc = y * c
        pk, qk = pkm1 * z - pkm2 * yc, qkm1 * z - qkm2 * yc
        change = 1.0
        if qk != 0.0:
            ratio = pk / qk
            change = abs((answer - ratio) / ratio)
            answer = ratio
        pkm2, pkm1, qkm2, qkm1 = pkm1, pk, qkm1, qk
        if abs(pk) > _BIG:
            pkm2, pkm1, qkm2, qkm1 = (v / _BIG for v in (pkm2, pkm1, qkm2, qkm1))
        if change <= _EPS:
            return answer * math.exp(log_front)


# -------------------------------------------------------------------- Smirnov, one-sided


def smirnov_sf(n: int, d: float) -> float:
    """P(D_n+ >= d), the one-sided one-sample statistic, exactly: the Birnbaum–Tingey sum
    d·Σ_j C(n, j)·(1 - d - j/n)^(n-j)·(d + j/n)^(j-1) over j <= n(1 - d). Its terms are all
    positive (no cancellation), each taken through its logarithm (no overflow): a relative
    error of a few 1e-13 for n up to some thousands (the logarithms reach n·log n).

    >>> round(smirnov_sf(10, 0.3), 6)
    0.135464
    """
    if n < 1 or math.isnan(d):
        return math.nan
    if d <= 0.0:
        return 1.0
    if d >= 1.0:
        return 0.0
    if n == 1:
        return 1.0 - d
    j = np.arange(math.floor(n * (1.0 - d)) + 1, dtype=np.float64)
    base = (1.0 - d) - j / n
    keep = base > 0.0  # a zero base (n·d a whole number) is a zero term
    j, base = j[keep], base[keep]
    logs = _log_factorials(n)
    ji = j.astype(np.int64)
    log_terms = (
        (logs[n] - logs[ji] - logs[n - ji])
        + (n - j) * np.log(base)
        + (j - 1.0) * np.log(d + j / n)
        + math.log(d)
    )
    return min(float(np.sum(np.exp(log_terms))), 1.0)


_LOG_FACTORIALS = np.zeros(1, dtype=np.float64)


def _log_factorials(n: int) -> np.ndarray:
    """log(k!) for k = 0..n (a table grown on demand; math.lgamma is within a few ulp)."""
    global _LOG_FACTORIALS
    if len(_LOG_FACTORIALS) <= n:
        size = max(n + 1, 2 * len(_LOG_FACTORIALS))
        _LOG_FACTORIALS = np.array([math.lgamma(k + 1.0) for k in range(size)])
    return _LOG_FACTORIALS


# ----------------------------------------------------------- Kolmogorov–Smirnov, two-sided


def ks_sf(n: int, d: float) -> float:
    """P(D_n >= d), D_n the two-sided one-sample Kolmogorov–Smirnov statistic of n values.

    The method is chosen as Simard and L'Ecuyer (2011) choose it, and computed as scipy's
    ``scipy.stats._ksstats._kolmogn(n, d, cdf=False)`` does (ported from it: the survival
    function only): Ruben–Gambino's closed forms at the ends, twice the one-sided probability
    past 0.5 and in the upper tail (Miller's approximation), Durbin's matrix algorithm
    (Marsaglia–Tsang–Wang) or Pomeranz's recursion for n up to 140, Durbin's matrix or
    Pelz–Good's asymptotic series beyond.

    Ported from scipy/stats/_ksstats.py, under this notice:

        Copyright (c) 2001-2002 Enthought, Inc. 2003, SciPy Developers.
        All rights reserved.

        Redistribution and use in source and binary forms, with or without modification,
        are permitted provided that the following conditions are met:

        1. Redistributions of source code must retain the above copyright notice, this
           list of conditions and the following disclaimer.
        2. Redistributions in binary form must reproduce the above copyright notice, this
           list of conditions and the following disclaimer in the documentation and/or
           other materials provided with the distribution.
        3. Neither the name of the copyright holder nor the names of its contributors may
           be used to endorse or promote products derived from this software without
           specific prior written permission.

        THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND
        ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED
        WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED.
        IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT,
        INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT
        NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE, DATA, OR
        PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY,
        WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE)
        ARISING IN ANY WAY OUT OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE
        POSSIBILITY OF SUCH DAMAGE.

    >>> round(ks_sf(100, 0.1), 6)
    0.252693
    """
    if n < 1 or math.isnan(d):
        return math.nan
    if d >= 1.0:
        return 0.0
    if d <= 0.0:
        return 1.0
    t = n * d
    if t <= 1.0:  # Ruben-Gambino: 1/2n <= d <= 1/n
        if t <= 0.5:
            return 1.0
        if n <= 140:
            cdf = float(np.prod(np.arange(1, n + 1) * (1.0 / n) * (2 * t - 1)))
        else:
            cdf = math.exp(_log_nfactorial_div_n_pow_n(n) + n * math.log(2 * t - 1))
        return _clip(1.0 - cdf)
    if t >= n - 1:  # Ruben-Gambino
        return _clip(2 * (1.0 - d) ** n)
    if d >= 0.5:  # exact: D_n+ and D_n- cannot both reach d
        return _clip(2 * smirnov_sf(n, d))
    nd_squared = t * d
    if n <= 140:
        if nd_squared <= 0.754693:
            return _clip(1.0 - _durbin_cdf(n, d))
        if nd_squared <= 4:
            return _clip(1.0 - _pomeranz_cdf(n, d))
        return _clip(2 * smirnov_sf(n, d))  # Miller's approximation
    if nd_squared >= 370.0:
        return 0.0
    if nd_squared >= 2.2:
        return _clip(2 * smirnov_sf(n, d))
    if n <= 100000 and n * d**1.5 <= 1.4:
        return _clip(1.0 - _durbin_cdf(n, d))
    return _clip(1.0 - _pelz_good_cdf(n, d))


def _clip(p: float) -> float:
    return min(max(p, 0.0), 1.0)


_E128 = 128
_EP128 = 2.0**_E128
_EM128 = 2.0**-_E128
# Stirling's series: B_2j/(2j)/(2j-1) for j = 8, ..., 1 (from scipy's _loggamma.pxd)
_STIRLING = (
    -2.955065359477124183e-2,
    6.4102564102564102564e-3,
    -1.9175269175269175269e-3,
    8.4175084175084175084e-4,
    -5.952380952380952381e-4,
    7.9365079365079365079e-4,
    -2.7777777777777777778e-3,
    8.3333333333333333333e-2,
)


def _log_nfactorial_div_n_pow_n(n: int) -> float:
    """log(n!/n^n) by Stirling's series, n·log(n) removed up front (no cancellation)."""
    rn = 1.0 / n
    series = 0.0
    for c in _STIRLING:  # Horner, in rn²
        series = series * (rn / n) + c
    return math.log(n) / 2 - n + math.log(2 * math.pi) / 2 + rn * series


def _durbin_cdf(n: int, d: float) -> float:
    """P(D_n <= d) by Durbin's matrix algorithm as Marsaglia, Tsang and Wang compute it: with
    d = (k - h)/n, the k-th diagonal entry of (n!/n^n)·H^n for an m×m matrix H, m = 2k - 1,
    scaled by powers of 2^128 as it grows."""
    nd = n * d
    if d >= 1.0:
        return 1.0
    if nd <= 0.5:
        return 0.0
    k = math.ceil(nd)
    h = k - nd
    m = 2 * k - 1
    steps = np.arange(1, m + 1)
    v = 1.0 - h**steps
    w = np.empty(m)
    factorial = 1.0
    for j in range(1, m + 1):
        w[j - 1] = factorial
        factorial /= j  # may underflow, harmlessly
        v[j - 1] *= factorial
    v[-1] = (1.0 + max(2 * h - 1.0, 0) ** m - 2 * h**m) * factorial
    matrix = np.zeros((m, m))
    for i in range(1, m):
        matrix[i - 1 :, i] = w[: m - i + 1]
    matrix[:, 0] = v
    matrix[-1, :] = v[::-1]

    power = np.eye(m)
    exponent = 0  # power's scale, in powers of 2
    matrix_exponent = 0
    left = n
    while left > 0:
        if left % 2:
            power = power @ matrix
            exponent += matrix_exponent
        matrix = matrix @ matrix
        matrix_exponent *= 2
        if abs(matrix[k - 1, k - 1]) > _EP128:
            matrix /= _EP128
            matrix_exponent += _E128
        left //= 2
    p = float(power[k - 1, k - 1])
    for i in range(1, n + 1):  # times n!/n^n
        p = i * p / n
        if abs(p) < _EM128:
            p *= _EP128
            exponent -= _E128
    return _clip(math.ldexp(p, exponent) if exponent else p)


def _pomeranz_bounds(i: int, n: int, ll: int, ceilf: int, roundf: int) -> tuple[int, int]:
    """The columns of row i of Pomeranz's recursion that can be non-zero."""
    if i == 0:
        j1, j2 = -ll - ceilf - 1, ll + ceilf - 1
    else:
        half, odd = divmod(i + 1, 2)
        if odd == 0:  # i is odd
            if half == n + 1:
                j1, j2 = n - ll - ceilf - 1, n + ll + ceilf - 1
            else:
                j1, j2 = half - 1 - ll - roundf - 1, half + ll - 1 + ceilf - 1
        else:
            j1, j2 = half - 1 - ll - 1, half + ll + roundf - 1
    return max(j1 + 2, 0), min(j2, n)


def _pomeranz_cdf(n: int, d: float) -> float:
    """P(D_n <= d) by Pomeranz's recursion: 2n + 1 rows, each the convolution of the one before
    with (almost) Poisson probabilities of three kinds; n!·(the last row's last entry)."""
    t = n * d
    ll = math.floor(t)
    f = t - ll
    g = min(f, 1.0 - f)
    ceilf = 1 if f > 0 else 0
    roundf = 1 if f > 0.5 else 0
    npwrs = 2 * (ll + 1)  # the most powers a convolution needs
    g_power = np.empty(npwrs)  # (g/n)^m/m!
    two_g_power = np.empty(npwrs)  # (2g/n)^m/m!
    rest_power = np.empty(npwrs)  # ((1-2g)/n)^m/m!
    g_power[0] = two_g_power[0] = rest_power[0] = 1.0
    for m in range(1, npwrs):
        g_power[m] = g_power[m - 1] * (g / n) / m
        two_g_power[m] = two_g_power[m - 1] * (2 * g / n) / m
        rest_power[m] = rest_power[m - 1] * ((1 - 2 * g) / n) / m

    exponent = 0
    v0, v1 = np.zeros(npwrs), np.zeros(npwrs)
    v1[0] = 1.0
    v0_start = v1_start = 0
    j1, j2 = _pomeranz_bounds(0, n, ll, ceilf, roundf)
    for i in range(1, 2 * n + 2):
        k1 = j1
        v0, v1 = v1, v0
        v0_start, v1_start = v1_start, v0_start
        v1.fill(0.0)
        j1, j2 = _pomeranz_bounds(i, n, ll, ceilf, roundf)
        ends = i in (1, 2 * n + 1)
        powers = g_power if ends else (two_g_power if i % 2 else rest_power)
        width = j2 - k1 + 1
        if width > 0:
            conv = np.convolve(v0[k1 - v0_start : k1 - v0_start + width], powers[:width])
            used = j2 - j1 + 1
            v1[:used] = conv[j1 - k1 : j1 - k1 + used]
            top = float(np.max(v1))
            if 0 < top < _EM128:  # keep it from underflowing
                v1 *= _EP128
                exponent -= _E128
            v1_start = v0_start + j1 - k1

    answer = float(v1[n - v1_start])
    for m in range(1, n + 1):  # times n!
        if abs(answer) > _EP128:
            answer *= _EM128
            exponent += _E128
        answer *= m
    return _clip(math.ldexp(answer, exponent) if exponent else answer)


_PI2, _PI4, _PI6 = math.pi**2, math.pi**4, math.pi**6
_SQRT_2PI = math.sqrt(2 * math.pi)


def _pelz_good_cdf(n: int, d: float) -> float:
    """P(D_n <= d) by Pelz and Good's series: Li-Chien's and Korolyuk's expansion
    K0(z) + K1(z)/sqrt(n) + K2(z)/n + K3(z)/n^1.5 (z = sqrt(n)·d) put through the Jacobi
    theta functions' functional equation, so that it converges fast for small z."""
    if d <= 0.0:
        return 0.0
    if d >= 1.0:
        return 1.0
    z = math.sqrt(n) * d
    z2, z3, z4, z6 = z**2, z**3, z**4, z**6
    q_log = -_PI2 / 8 / z2
    if q_log < -708:  # z below 0.0417: the CDF underflows
        return 0.0
    q = math.exp(q_log)
    k1a, k1b = -z2, _PI2 / 4
    k2a = 6 * z6 + 2 * z4
    k2b = (2 * z4 - 5 * z2) * _PI2 / 4
    k2c = _PI4 * (1 - 2 * z2) / 16
    k3d = _PI6 * (5 - 30 * z2) / 64
    k3c = _PI4 * (-60 * z2 + 212 * z4) / 16
    k3b = _PI2 * (135 * z4 - 96 * z6) / 4
    k3a = -30 * z6 - 90 * z**8

    sums = [0.0, 0.0, 0.0, 0.0]
    most = math.ceil(16 * z / math.pi)
    for k in range(most, 0, -1):  # Horner in q^8k: Σ c_m q^(m²) over odd m = 2k - 1
        m = 2 * k - 1
        m2, m4, m6 = m**2, m**4, m**6
        q_power = q ** (8 * k)
        coefficients = (
            1.0,
            k1a + k1b * m2,
            k2a + k2b * m2 + k2c * m4,
            k3a + k3b * m2 + k3c * m4 + k3d * m6,
        )
        sums = [s * q_power + c for s, c in zip(sums, coefficients, strict=True)]
    divisors = (z, 6 * z4, 72 * z**7, 6480 * z**10)
    sums = [s * q * _SQRT_2PI / div for s, div in zip(sums, divisors, strict=True)]

    # The sums over every k of K2's and K3's other terms: little cancellation, direct.
    q = math.exp(-_PI2 / 2 / z2)
    ks = np.arange(most, 0, -1, dtype=np.float64)
    ks2 = ks**2
    q_powers = q**ks2
    sqrt3z, kpi = math.sqrt(3) * z, math.pi * ks
    sums[2] += float(np.sum(ks2 * q_powers)) * _PI2 * _SQRT_2PI / (-36 * z3)
    extra = float(np.sum((sqrt3z + kpi) * (sqrt3z - kpi) * ks2 * q_powers))
    sums[3] += extra * _PI2 * _SQRT_2PI / (216 * z6)
    return float(sum(s / float(n) ** (i / 2.0) for i, s in enumerate(sums)))
