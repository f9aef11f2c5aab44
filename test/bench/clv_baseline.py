#!/usr/bin/python3
"""The NumPy/SciPy baseline of the CLV benchmark (test/bench/README_clv.md).

A vectorised BG/NBD and Gamma-Gamma implementation in the style of the
lifetimes library, written from the published formulas:

  BG/NBD       Fader, Hardie & Lee (2005), "Counting your customers the easy
               way", Marketing Science 24(2): log-likelihood (their eq. 6,
               in the log-sum-exp form of their implementation note),
               P(alive) (eq. 13 of the note) and the conditional expectation
               (eq. 10), which needs the Gauss hypergeometric function.
  Gamma-Gamma  Fader & Hardie (2013), "The Gamma-Gamma model of monetary
               value": the likelihood of the repeat buyers' mean spend.
  CLV          discounted monthly cash flows, as lifetimes'
               customer_lifetime_value: months of 30 days.  Timed twice: with
               each month's expectation reused for the next ("clv", the
               faster), and with lifetimes' loop, which evaluates both ends of
               every month ("clv_lifetimes_loop").

The fits minimise the mean negative log-likelihood per customer over the
log-parameters with scipy.optimize.minimize(method="BFGS"), gradient left to
scipy's 2-point finite differences (what lifetimes does without autograd),
gtol 1e-7 (lifetimes' default tol).  The start point is that of the C code:
BG/NBD r = a = b = 1 and alpha = sum(T) / sum(x); Gamma-Gamma p = 1, q = 2,
v = mean spend.  Every customer row enters the likelihood (lifetimes' default;
it only groups equal summaries when the caller passes weights).

Input: a CSV file with a header, as psql's \\copy (...) TO ... CSV HEADER
writes it, with columns frequency, recency, t and, where needed,
monetary_value and weight.  Reading the file is not timed.  Output: one JSON
object on stdout with the results and the times, wall-clock ("seconds") and
CPU time of the process ("cpu_seconds"), each the best of --repeat runs.

  clv_baseline.py fit-bgnbd FILE [--repeat N]
  clv_baseline.py fit-gamma-gamma FILE [--repeat N]
  clv_baseline.py score FILE --bgnbd r,alpha,a,b --gamma-gamma p,q,v
                  [--horizon H] [--months M] [--discount-rate D]
                  [--unit-days U] [--repeat N]
"""

import argparse
import json
import sys
import time

import numpy as np
import scipy
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

DAYS_PER_MONTH = 30.0
GTOL = 1e-7


def read_columns(path, wanted):
    """The named columns of a CSV file with a header, as float64 arrays."""
    with open(path) as f:
        header = f.readline().strip().split(",")
    missing = [c for c in wanted if c not in header]
    if missing:
        sys.exit(f"{path}: no column {', '.join(missing)} (header: {','.join(header)})")
    optional = [c for c in ("weight",) if c in header and c not in wanted]
    names = list(wanted) + optional
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2,
                      usecols=[header.index(c) for c in names], dtype=np.float64)
    columns = {name: np.ascontiguousarray(data[:, i]) for i, name in enumerate(names)}
    columns.setdefault("weight", None)
    return columns


def peak_rss_reset():
    """Reset the process's peak resident set size (Linux >= 4.0), if allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def best_of(repeat, run):
    """Run run() repeat times: its result, and the best wall-clock and CPU
    times (the CPU time of this process, which other work on the machine
    does not inflate) with every run's."""
    wall, cpu = [], []
    result = None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = run()
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start)
    return result, {"seconds": min(wall), "cpu_seconds": min(cpu),
                    "all_seconds": wall, "all_cpu_seconds": cpu}


def mean_of(values, weight):
    if weight is None:
        return values.mean()
    return np.dot(weight, values) / weight.sum()


# --- BG/NBD ---------------------------------------------------------------

def bgnbd_negative_ll(log_params, x, tx, T, weight):
    """Minus the mean log-likelihood per customer at log(r, alpha, a, b)."""
    r, alpha, a, b = np.exp(log_params)
    # Gamma(r + x) alpha^r / Gamma(r) * B(a, b + x) / B(a, b)
    common = (gammaln(r + x) - gammaln(r) + r * np.log(alpha)
              + betaln(a, b + x) - betaln(a, b))
    # alive at T: (alpha + T)^-(r + x)
    alive = -(r + x) * np.log(alpha + T)
    # dropped out right after the last purchase (only if there was a repeat one)
    dropped = (np.log(a) - np.log(b + np.maximum(x, 1) - 1)
               - (r + x) * np.log(alpha + tx))
    ll = common + np.where(x > 0, np.logaddexp(alive, dropped), alive)
    value = -mean_of(ll, weight)
    return value if np.isfinite(value) else np.inf


def bgnbd_start(x, T, weight):
    w = np.ones_like(x) if weight is None else weight
    return np.array([0.0, np.log(max(np.dot(w, T), 1e-6) / max(np.dot(w, x), 1e-6)), 0.0, 0.0])


def fit_bgnbd(c):
    x, tx, T, w = c["frequency"], c["recency"], c["t"], c["weight"]
    result = minimize(bgnbd_negative_ll, bgnbd_start(x, T, w), args=(x, tx, T, w),
                      method="BFGS", options={"gtol": GTOL})
    customers = len(x) if w is None else float(w.sum())
    r, alpha, a, b = np.exp(result.x)
    return result, {"r": r, "alpha": alpha, "a": a, "b": b}, customers


# --- Gamma-Gamma ----------------------------------------------------------

def gamma_gamma_negative_ll(log_params, x, m, weight):
    """Minus the mean log-likelihood per repeat buyer at log(p, q, v)."""
    p, q, v = np.exp(log_params)
    px = p * x
    ll = (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v)
          + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * np.log(x * m + v))
    value = -mean_of(ll, weight)
    return value if np.isfinite(value) else np.inf


def fit_gamma_gamma(c):
    # only repeat buyers inform the model, as in gamma_gamma_fit
    keep = c["frequency"] > 0
    x, m = c["frequency"][keep], c["monetary_value"][keep]
    w = None if c["weight"] is None else c["weight"][keep]
    start = np.array([0.0, np.log(2.0), np.log(mean_of(m, w))])
    result = minimize(gamma_gamma_negative_ll, start, args=(x, m, w),
                      method="BFGS", options={"gtol": GTOL})
    customers = len(x) if w is None else float(w.sum())
    p, q, v = np.exp(result.x)
    return result, {"p": p, "q": q, "v": v}, customers


# --- scoring --------------------------------------------------------------

def p_alive(bg, x, tx, T):
    r, alpha, a, b = bg
    # odds of having dropped out: a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x)
    log_odds = (np.log(a) - np.log(b + np.maximum(x, 1) - 1)
                + (r + x) * (np.log(alpha + T) - np.log(alpha + tx)))
    return np.where(x > 0, 1.0 / (1.0 + np.exp(log_odds)), 1.0)


def expected_purchases(bg, x, tx, T, horizon):
    """E[Y(horizon) | x, t_x, T], Fader, Hardie & Lee (2005) eq. 10."""
    r, alpha, a, b = bg
    big_a, big_b, big_c = r + x, b + x, a + b + x - 1
    z = horizon / (alpha + T + horizon)
    log_1mz = np.log(alpha + T) - np.log(alpha + T + horizon)
    # ((alpha + T) / (alpha + T + t))^(r + x) 2F1(r + x, b + x; a + b + x - 1; z) ...
    with np.errstate(over="ignore", invalid="ignore"):
        tail = np.exp(big_a * log_1mz) * hyp2f1(big_a, big_b, big_c, z)
        # ... overflows for heavy buyers: there use Euler's transformation
        # 2F1(A, B; C; z) = (1 - z)^(C - A - B) 2F1(C - A, C - B; C; z)
        bad = ~np.isfinite(tail)
        if bad.any():
            tail[bad] = (np.exp((big_c - big_b)[bad] * log_1mz[bad])
                         * hyp2f1((big_c - big_a)[bad], (big_c - big_b)[bad], big_c[bad], z[bad]))
    return big_c / (a - 1) * (1 - tail) * p_alive(bg, x, tx, T)


def gamma_gamma_expected(gg, x, m):
    p, q, v = gg
    return p * (v + x * m) / (p * x + q - 1)


def clv(bg, gg, x, tx, T, m, months, discount_rate, unit_days):
    """Sum over months k of spend * (E[by month k] - E[by month k - 1]) / (1 + d)^k.

    Each month's cumulative expectation is kept for the next month, so eq. 10
    is evaluated once per month: the faster baseline, the one the targets are
    judged against.
    """
    month = DAYS_PER_MONTH / unit_days
    spend = gamma_gamma_expected(gg, x, m)
    value = np.zeros_like(x)
    previous = np.zeros_like(x)
    for k in range(1, months + 1):
        cumulative = expected_purchases(bg, x, tx, T, k * month)
        value += spend * (cumulative - previous) / (1 + discount_rate) ** k
        previous = cumulative
    return value


def clv_lifetimes_loop(bg, gg, x, tx, T, m, months, discount_rate, unit_days):
    """The same sum with lifetimes' loop: both ends of every month evaluated."""
    month = DAYS_PER_MONTH / unit_days
    spend = gamma_gamma_expected(gg, x, m)
    value = np.zeros_like(x)
    for k in range(1, months + 1):
        purchases = (expected_purchases(bg, x, tx, T, k * month)
                     - expected_purchases(bg, x, tx, T, (k - 1) * month))
        value += spend * purchases / (1 + discount_rate) ** k
    return value


# --- commands -------------------------------------------------------------

def fit_report(kind, fit, c, repeat):
    peak_rss_reset()
    (result, params, customers), times = best_of(repeat, lambda: fit(c))
    return {
        "model": kind,
        "rows": int(len(c["frequency"])),
        **times,
        "params": params,
        "log_likelihood": -float(result.fun) * customers,
        "customers": customers,
        "iterations": int(result.nit),
        "function_evaluations": int(result.nfev),
        "success": bool(result.success),
        "message": str(result.message),
        "peak_rss_bytes": peak_rss_bytes(),
    }


def floats(text, count):
    values = [float(v) for v in text.split(",")]
    if len(values) != count:
        raise argparse.ArgumentTypeError(f"expected {count} comma-separated numbers")
    return values


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["fit-bgnbd", "fit-gamma-gamma", "score"])
    parser.add_argument("file")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--bgnbd", type=lambda s: floats(s, 4), help="r,alpha,a,b")
    parser.add_argument("--gamma-gamma", type=lambda s: floats(s, 3), help="p,q,v")
    parser.add_argument("--horizon", type=float, default=365)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--discount-rate", type=float, default=0.01)
    parser.add_argument("--unit-days", type=float, default=1)
    args = parser.parse_args()
    versions = {"numpy": np.__version__, "scipy": scipy.__version__}

    if args.command == "fit-bgnbd":
        c = read_columns(args.file, ["frequency", "recency", "t"])
        out = fit_report("bgnbd", fit_bgnbd, c, args.repeat)
    elif args.command == "fit-gamma-gamma":
        c = read_columns(args.file, ["frequency", "monetary_value"])
        out = fit_report("gamma_gamma", fit_gamma_gamma, c, args.repeat)
    else:
        if args.bgnbd is None or args.gamma_gamma is None:
            parser.error("score needs --bgnbd and --gamma-gamma")
        c = read_columns(args.file, ["frequency", "recency", "t", "monetary_value"])
        x, tx, T, m = c["frequency"], c["recency"], c["t"], c["monetary_value"]
        bg, gg = args.bgnbd, args.gamma_gamma
        out = {"rows": int(len(x))}
        runs = {
            "p_alive": lambda: p_alive(bg, x, tx, T),
            "expected_purchases": lambda: expected_purchases(bg, x, tx, T, args.horizon),
            "clv": lambda: clv(bg, gg, x, tx, T, m, args.months, args.discount_rate, args.unit_days),
            "clv_lifetimes_loop": lambda: clv_lifetimes_loop(bg, gg, x, tx, T, m, args.months,
                                                             args.discount_rate, args.unit_days),
        }
        for name, run in runs.items():
            values, times = best_of(args.repeat, run)
            out[name] = {**times, "sum": float(values.sum()),
                         "finite": bool(np.isfinite(values).all())}
    out["versions"] = versions
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
