#!/usr/bin/python3
"""High-precision BG/NBD reference values for sql/bgnbd.sql.

Evaluates the published formulas of Fader, Hardie & Lee (2005) literally,
with mpmath's Gauss hypergeometric function at 50 significant digits: an
independent check of the C code, which rewrites them (Euler transformation,
log space, quadrature fallback).  Needs Debian's python3-mpmath; run it to
regenerate the VALUES list pasted into sql/bgnbd.sql.
"""
from mpmath import mp, mpf, hyp2f1, beta, gamma, factorial, betainc

mp.dps = 50


def p_alive(r, alpha, a, b, x, tx, T):
    if x == 0:
        return mpf(1)
    return 1 / (1 + a / (b + x - 1) * ((alpha + T) / (alpha + tx)) ** (r + x))


def conditional(r, alpha, a, b, x, tx, T, t):
    if a == 1:  # the formula's removable singularity: take the limit
        a = mpf(1) + mpf(10) ** -40
    z = t / (alpha + T + t)
    bracket = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z, maxterms=10**6)
    return (a + b + x - 1) / (a - 1) * bracket * p_alive(r, alpha, a, b, x, tx, T)


def population(r, alpha, a, b, t):
    if a == 1:
        a = mpf(1) + mpf(10) ** -40
    z = t / (alpha + t)
    return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, z, maxterms=10**6))


def probability(r, alpha, a, b, t, n):
    q, p = alpha / (alpha + t), t / (alpha + t)
    value = beta(a, b + n) / beta(a, b) * gamma(r + n) / (gamma(r) * factorial(n)) * q ** r * p ** n
    if n > 0:
        tail = 1 - q ** r * sum(gamma(r + j) / (gamma(r) * factorial(j)) * p ** j for j in range(n))
        value += beta(a + 1, b + n - 1) / beta(a, b) * tail
    return value


PAPER = ('0.2426', '4.4135', '0.7929', '2.4258')
CASES = [
    # label, (r, alpha, a, b), (x, t_x, T), horizon
    ('customer 1 of CDNOW', PAPER, (2, '30.43', '38.86'), 39),
    ('one-time buyer', PAPER, (0, 0, '38.86'), 39),
    ('heavy buyer, x = 10000, bought last week', PAPER, (10000, '38.86', '38.86'), 39),
    ('heavy buyer, last purchase a few days ago', PAPER, (10000, '38.5', '38.86'), 39),
    ('heavy buyer who stopped', PAPER, (10000, '5', '38.86'), 39),
    ('long horizon, 1000 years of weeks', PAPER, (0, 0, '38.86'), 52000),
    ('long horizon, repeat buyer', PAPER, (3, 20, 30), 5200),
    ('a + b < 1, one-time buyer', ('0.5', '2', '0.3', '0.4'), (0, 0, 10), 50),
    ('a + b < 1, repeat buyer', ('0.5', '2', '0.3', '0.4'), (3, 8, 10), 50),
    ('a = 1 exactly', ('1', '1', '1', '2'), (1, 5, 10), 20),
    ('tiny parameters', ('0.001', '0.001', '0.001', '0.001'), (1, 1, 2), 10),
    ('huge parameters', ('1000', '10000', '1000', '1000'), (5, 30, 40), 100),
    ('first seen today', PAPER, (0, 0, 0), 39),
]

def double(v):
    """A value as a double can hold it: below its range, 0."""
    return '0' if abs(v) < mpf('1e-300') else mp.nstr(v, 20)


if __name__ == '__main__':
    for label, params, (x, tx, T), t in CASES:
        r, alpha, a, b = map(mpf, params)
        x, tx, T, t = mpf(x), mpf(tx), mpf(T), mpf(t)
        print("\t('%s', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)," % (
            label, *params, int(x), mp.nstr(tx, 10), mp.nstr(T, 10), mp.nstr(t, 10),
            double(p_alive(r, alpha, a, b, x, tx, T)),
            double(conditional(r, alpha, a, b, x, tx, T, t))))
    print()
    for t in (1, 39, 78, 520):
        print('\t(%s, %s),' % (t, mp.nstr(population(*map(mpf, PAPER), mpf(t)), 20)))
    print()
    for t, n in ((39, 0), (39, 1), (39, 2), (39, 5), (78, 10), (1, 0)):
        print('\t(%s, %s, %s),' % (t, n, mp.nstr(probability(*map(mpf, PAPER), mpf(t), n), 20)))
