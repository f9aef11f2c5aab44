#!/usr/bin/python3
"""Reference values for csat_summary and ces_summary (src/survey.c).

Computes, from the same answers, every number the two aggregates report, by
other means than the C code: exact fractions for counts, shares and means,
statistics.stdev for the spread, statistics.NormalDist for the normal
quantile, and Student's t quantile from the closed-form t distribution of
Abramowitz & Stegun 26.7.3-26.7.4 (finite sums for an integer number of
degrees of freedom) inverted by bisection, where the C code asks GSL.  The
t quantiles are first checked against the published table (see T_TABLE) and
against the exact forms for 1 and 2 degrees of freedom; the script stops
with an error if any disagrees.

Standard library only.  test/t/008_survey_reference.pl runs it with --sql,
which prints one query comparing the aggregates with these values (one row
per case and metric), and checks each row; run it without arguments to see
the values.

The conventions are those of README.md ("CSAT and customer effort"):
answers 1..scale on a 3, 5, 7 or 10-point scale; CSAT satisfied is the
top-2 box (the top box on 3 points); CES low effort is an answer above the
midpoint (scale + 1) / 2; the CSAT interval is the 95% Wilson interval of
the satisfied share, in percent; the CES interval is the 95% t interval of
the mean with n - 1 degrees of freedom, none for one answer.
"""
import math
import random
import statistics
import sys
from decimal import Decimal, getcontext
from fractions import Fraction

getcontext().prec = 40

SCALES = (3, 5, 7, 10)


def satisfied(scale, answer):
    return answer >= (scale if scale == 3 else scale - 1)


def low_effort(scale, answer):
    return answer > Fraction(scale + 1, 2)


def t_two_sided(t, nu):
    """P(|T| < t) for T ~ Student t with integer nu > 0 degrees of freedom
    (Abramowitz & Stegun 26.7.3 for odd nu, 26.7.4 for even nu)."""
    theta = math.atan(t / math.sqrt(nu))
    c2 = math.cos(theta) ** 2
    if nu % 2 == 1:
        if nu == 1:
            return 2 / math.pi * theta
        term = math.cos(theta)          # cos^1, then (2 4 .. 2j)/(1 3 .. 2j+1) cos^(2j+1)
        total = term
        for j in range(1, (nu - 1) // 2):
            term *= (2 * j) / (2 * j + 1) * c2
            total += term
        return 2 / math.pi * (theta + math.sin(theta) * total)
    term = 1.0                          # 1, then (1 3 .. 2j-1)/(2 4 .. 2j) cos^(2j)
    total = term
    for j in range(1, nu // 2):
        term *= (2 * j - 1) / (2 * j) * c2
        total += term
    return math.sin(theta) * total


def t_quantile(p, nu):
    """The p quantile (p > 1/2) of Student's t with nu degrees of freedom."""
    target = 2 * p - 1
    lo, hi = 0.0, 1.0
    while t_two_sided(hi, nu) < target:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if t_two_sided(mid, nu) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


# Upper 2.5% points of Student's t, as printed (3 decimals) in the NIST/
# SEMATECH e-Handbook of Statistical Methods, section 1.3.6.7.2 "Critical
# Values of the Student's t Distribution", column 0.025, and in Biometrika
# Tables for Statisticians vol. 1 (1966), table 12.
T_TABLE = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
           9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131,
           16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 25: 2.060, 29: 2.045,
           30: 2.042, 40: 2.021, 60: 2.000, 100: 1.984}


def check_t_quantiles():
    problems = []
    for nu, printed in T_TABLE.items():
        got = t_quantile(0.975, nu)
        if abs(got - printed) > 0.0005:
            problems.append(f't(0.975, {nu}) = {got!r}, the table prints {printed}')
    # exact forms: nu = 1 is Cauchy, nu = 2 has t = (2p - 1) sqrt(2 / (1 - (2p - 1)^2))
    exact = {1: math.tan(math.pi * 0.475), 2: 0.95 * math.sqrt(2 / (1 - 0.95 ** 2))}
    for nu, value in exact.items():
        got = t_quantile(0.975, nu)
        if abs(got - value) > 1e-12 * value:
            problems.append(f't(0.975, {nu}) = {got!r}, exactly {value!r}')
    # many degrees of freedom approach the normal quantile from above
    z = statistics.NormalDist().inv_cdf(0.975)
    if not 0 < t_quantile(0.975, 5000) - z < 1e-3:
        problems.append('t(0.975, 5000) is not just above the normal quantile')
    if problems:
        sys.exit('survey_reference.py: the t quantile is wrong:\n  ' + '\n  '.join(problems))


Z = statistics.NormalDist().inv_cdf(0.975)


def csat_reference(scale, answers):
    n = len(answers)
    s = sum(1 for a in answers if satisfied(scale, a))
    if n == 0:
        return (0, 0, None, None, None, None)
    p = s / n
    # Wilson (1927): (p + z^2/2n -/+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z / (1 + Z * Z / n) * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return (n, s, Fraction(100 * s, n), Fraction(sum(answers), n),
            100 * max(centre - half, 0.0), 100 * min(centre + half, 1.0))


def ces_reference(scale, answers):
    n = len(answers)
    low = sum(1 for a in answers if low_effort(scale, a))
    if n == 0:
        return (0, 0, None, None, None, None)
    mean = Fraction(sum(answers), n)
    if n == 1:
        return (n, low, Fraction(100 * low, n), mean, None, None)
    half = t_quantile(0.975, n - 1) * statistics.stdev(answers) / math.sqrt(n)
    return (n, low, Fraction(100 * low, n), mean, float(mean) - half, float(mean) + half)


def cases():
    """(name, scale, answers): hand-picked ones, then seeded random ones."""
    yield ('five answers on 5 points', 5, [5, 4, 4, 3, 1])
    yield ('one answer of 5', 5, [5])
    yield ('one answer of 1', 5, [1])
    yield ('all satisfied', 5, [4, 5, 5, 4])
    yield ('none satisfied', 7, [1, 2, 5, 3])
    yield ('two equal answers', 7, [6, 6])
    yield ('the extremes of 7', 7, [1, 7])
    yield ('every answer of 3', 3, [1, 2, 3])
    yield ('every answer of 10', 10, list(range(1, 11)))
    rng = random.Random(20240620)
    for scale in SCALES:
        for n in (2, 3, 5, 12, 31, 200, 1500):
            # skewed towards the top, as satisfaction answers are
            weights = [1 + k * k for k in range(1, scale + 1)]
            yield (f'{n} random answers on {scale} points', scale,
                   rng.choices(range(1, scale + 1), weights=weights, k=n))


def sql_value(v):
    if v is None:
        return 'NULL::numeric'
    if isinstance(v, Fraction):
        return str(Decimal(v.numerator) / Decimal(v.denominator))
    if isinstance(v, float):
        return repr(v)
    return str(v)


def comparison_sql(all_cases):
    answers = []
    expected = []
    for i, (name, scale, values) in enumerate(all_cases, 1):
        answers += [f'({i}, {scale}, {a})' for a in values]
        for metric, ref in (('csat', csat_reference(scale, values)), ('ces', ces_reference(scale, values))):
            quoted = name.replace("'", "''")
            expected.append(f"({i}, '{quoted}', '{metric}', " + ', '.join(sql_value(v) for v in ref) + ')')
    # counts exactly; percent and mean to 1e-12 (numeric division keeps 16+
    # significant digits); the intervals, from doubles, to 1e-9
    return f"""-- cases: {len(expected)}
WITH answers(case_id, scale, score) AS (VALUES
{', '.join(answers)}),
expected(case_id, name, metric, responses, favourable, percent, mean, ci_low, ci_high) AS (VALUES
{(',' + chr(10)).join(expected)}),
summaries AS (
	SELECT case_id, post_purchase.csat_summary(score, scale) AS c, post_purchase.ces_summary(score, scale) AS e,
		   post_purchase.csat(score, scale) AS csat
	FROM answers GROUP BY case_id),
got AS (
	SELECT case_id, 'csat' AS metric, (c).responses, (c).satisfied AS favourable, (c).csat AS percent, (c).mean,
		   (c).ci_low, (c).ci_high, csat IS NOT DISTINCT FROM (c).csat AS consistent
	FROM summaries
	UNION ALL
	SELECT case_id, 'ces', (e).responses, (e).low_effort, (e).low_effort_percent, (e).mean,
		   (e).ci_low, (e).ci_high, true
	FROM summaries)
SELECT e.metric || ': ' || e.name,
	   g.consistent
	   AND g.responses = e.responses AND g.favourable = e.favourable
	   AND abs(g.percent - e.percent) <= 1e-12 AND abs(g.mean - e.mean) <= 1e-12
	   AND (g.ci_low IS NULL) = (e.ci_low IS NULL) AND (g.ci_high IS NULL) = (e.ci_high IS NULL)
	   AND coalesce(abs(g.ci_low - e.ci_low) <= 1e-9 AND abs(g.ci_high - e.ci_high) <= 1e-9, true),
	   format('got %s %s %s %s [%s, %s], expected %s %s %s %s [%s, %s]',
			  g.responses, g.favourable, g.percent, g.mean, g.ci_low, g.ci_high,
			  e.responses, e.favourable, e.percent, e.mean, e.ci_low, e.ci_high)
FROM expected e LEFT JOIN got g USING (case_id, metric)
ORDER BY e.case_id, e.metric;
"""


def main():
    check_t_quantiles()
    all_cases = list(cases())
    if sys.argv[1:] == ['--sql']:
        print(comparison_sql(all_cases), end='')
        return
    if sys.argv[1:]:
        sys.exit('usage: survey_reference.py [--sql]')
    for name, scale, values in all_cases:
        print(name)
        print('  csat', ', '.join(sql_value(v) for v in csat_reference(scale, values)))
        print('  ces ', ', '.join(sql_value(v) for v in ces_reference(scale, values)))


if __name__ == '__main__':
    main()
