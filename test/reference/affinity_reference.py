#!/usr/bin/python3
"""Reference values for product_affinity (src/affinity.sql).

Generates a basket set with a fixed seed (customers, orders at times that
often tie or fall exactly on the window's end, items with repeated products,
orders without items), and computes from it, by other means than the SQL
(Python sets and loops over each order and each customer's purchases, exact
fractions), every row refresh_product_affinity() must keep:

  same_order: total N = orders with at least one item; a_count, b_count =
    orders containing A, B; pair_count = orders containing both.
  sequence: total C = customers with at least one item; a_count, b_count =
    customers who bought A, B; pair_count = customers who bought B at some
    time in (tA, tA + window] after some purchase of A at tA.
  support = pair_count / total, confidence = pair_count / a_count,
  lift = pair_count * total / (a_count * b_count), each the float nearest
  the exact Fraction; kept when support >= min_support and confidence >=
  min_confidence (as floats).

Standard library only.  test/t/011_affinity_reference.pl runs it with --sql,
which prints the SQL that loads the baskets into tracked tables, runs the
refresh for each case, and compares product_affinity with these rows
exactly (counts as integers, ratios as float8 bit for bit): one result row
per case and check, "name|agrees|detail".  Without arguments it prints a
summary of the values.
"""
import random
import sys
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from itertools import combinations

SEED = 20240611
CUSTOMERS = 400
PRODUCTS = 30
BASE = datetime(2024, 1, 1, 9, 0, tzinfo=timezone.utc)

# (window in days, min_support, min_confidence): written the same in SQL
CASES = [
    (30, '0', '0'),
    (30, '0.02', '0.1'),
    (7, '0.005', '0.1'),
]


def generate():
    """orders: id -> (customer, time); items: list of (order id, product)."""
    rng = random.Random(SEED)
    # a long tail: product k is chosen with weight 1 / (k + 1)
    weights = [1.0 / (k + 1) for k in range(PRODUCTS)]
    products = ['p%02d' % k for k in range(PRODUCTS)]
    orders = {}
    items = []
    next_order = 1
    for c in range(CUSTOMERS):
        customer = 'c%03d' % c
        day = rng.randrange(0, 60)
        for _ in range(rng.choice([1, 1, 2, 2, 3, 4, 6])):
            # whole days apart, often exactly 7 or 30 (the windows' ends),
            # sometimes 0 (another order at the same instant)
            hour = rng.choice([0, 0, 0, 5])
            when = BASE + timedelta(days=day, hours=hour)
            orders[next_order] = (customer, when)
            n_items = rng.choice([0, 1, 1, 2, 2, 3, 4])
            for _ in range(n_items):
                items.append((next_order, rng.choices(products, weights)[0]))
            next_order += 1
            day += rng.choice([0, 1, 3, 7, 7, 10, 29, 30, 30, 31, 45])
    return orders, items


def reference_rows(orders, items, window_days, min_support, min_confidence):
    window = timedelta(days=window_days)
    min_support = float(min_support)
    min_confidence = float(min_confidence)
    order_products = {}
    for order, product in items:
        order_products.setdefault(order, set()).add(product)
    rows = []

    # same order
    total = len(order_products)
    orders_with = {}
    both = {}
    for order, products in order_products.items():
        for p in products:
            orders_with[p] = orders_with.get(p, 0) + 1
        for a, b in combinations(sorted(products), 2):
            both[(a, b)] = both.get((a, b), 0) + 1
    for (x, y), n in both.items():
        for a, b in ((x, y), (y, x)):
            rows.append(measure('same_order', a, b, n, orders_with[a], orders_with[b], total))

    # B follows A within the window, per customer
    purchases = {}
    for order, products in order_products.items():
        customer, when = orders[order]
        for p in products:
            purchases.setdefault(customer, []).append((when, p))
    total = len(purchases)
    customers_with = {}
    follows = {}
    for customer, bought in purchases.items():
        for p in {p for _, p in bought}:
            customers_with[p] = customers_with.get(p, 0) + 1
        pairs = set()
        for ta, a in bought:
            for tb, b in bought:
                if a != b and ta < tb <= ta + window:
                    pairs.add((a, b))
        for pair in pairs:
            follows[pair] = follows.get(pair, 0) + 1
    for (a, b), n in follows.items():
        rows.append(measure('sequence', a, b, n, customers_with[a], customers_with[b], total))

    return [r for r in rows if r[7] >= min_support and r[8] >= min_confidence]


def measure(kind, a, b, n, a_count, b_count, total):
    support = float(Fraction(n, total))
    confidence = float(Fraction(n, a_count))
    lift = float(Fraction(n * total, a_count * b_count))
    return (kind, a, b, n, a_count, b_count, total, support, confidence, lift)


def sql_literal_float(x):
    # repr is the shortest string that reads back as the same double
    return "'%s'::float8" % repr(x)


def print_sql(orders, items):
    out = []
    out.append("SET client_min_messages = warning;")
    out.append("SET TimeZone = 'UTC';")
    out.append("CREATE TABLE ref_orders (order_id int PRIMARY KEY, customer_id text, ordered_at timestamptz, "
               "amount numeric);")
    out.append("CREATE TABLE ref_items (order_id int, product_id text, quantity int);")
    out.append("CREATE INDEX ON ref_items (order_id);")
    out.append("DO $$BEGIN PERFORM post_purchase.track_orders('ref_orders'); "
               "PERFORM post_purchase.track_order_items('ref_items'); END$$;")
    out.append("INSERT INTO ref_orders VALUES\n" + ",\n".join(
        "(%d, '%s', '%s', 1)" % (o, c, t.isoformat()) for o, (c, t) in sorted(orders.items())) + ";")
    out.append("INSERT INTO ref_items VALUES\n" + ",\n".join(
        "(%d, '%s', 1)" % (o, p) for o, p in items) + ";")
    out.append("CREATE TABLE ref_expected (run int, kind text, a text, b text, pair bigint, a_n bigint, "
               "b_n bigint, total bigint, support float8, confidence float8, lift float8);")
    out.append("CREATE TABLE ref_got (LIKE post_purchase.product_affinity);")
    out.append("ALTER TABLE ref_got ADD COLUMN run int;")
    cases = 0
    for run, (window, min_support, min_confidence) in enumerate(CASES, 1):
        rows = reference_rows(orders, items, window, min_support, min_confidence)
        if rows:
            out.append("INSERT INTO ref_expected VALUES\n" + ",\n".join(
                "(%d, '%s', '%s', '%s', %d, %d, %d, %d, %s, %s, %s)" % (
                    (run,) + r[:7] + tuple(sql_literal_float(x) for x in r[7:])) for r in rows) + ";")
        out.append("DO $$BEGIN PERFORM post_purchase.refresh_product_affinity('%d days', %s, %s); END$$;"
                   % (window, min_support, min_confidence))
        out.append("INSERT INTO ref_got SELECT *, %d FROM post_purchase.product_affinity;" % run)
        cases += 3
        print("-- run %d: window %d days, min_support %s, min_confidence %s: %d rows"
              % (run, window, min_support, min_confidence, len(rows)), file=sys.stderr)
    out.append("-- cases: %d" % cases)
    # per run: the row counts, the expected rows not matched exactly, the
    # computed rows not expected
    out.append("""SELECT format('run %s: row count', e.run), (SELECT count(*) FROM ref_got g WHERE g.run = e.run) = count(*),
       format('expected %s, computed %s', count(*), (SELECT count(*) FROM ref_got g WHERE g.run = e.run))
FROM ref_expected e GROUP BY e.run
UNION ALL
SELECT format('run %s: every reference row, exactly', r), count(e.*) FILTER (WHERE g.run IS NULL) = 0,
       coalesce(string_agg(format('%s %s->%s', e.kind, e.a, e.b), ', ') FILTER (WHERE g.run IS NULL), '')
FROM generate_series(1, NCASES) r LEFT JOIN ref_expected e ON e.run = r
LEFT JOIN ref_got g ON g.run = e.run AND g.kind = e.kind AND g.product_a = e.a AND g.product_b = e.b
 AND g.pair_count = e.pair AND g.a_count = e.a_n AND g.b_count = e.b_n AND g.total = e.total
 AND g.support = e.support AND g.confidence = e.confidence AND g.lift = e.lift
 AND (g.kind = 'same_order') = (g.window_length IS NULL)
GROUP BY r
UNION ALL
SELECT format('run %s: no row the reference lacks', r), count(g.*) FILTER (WHERE e.run IS NULL) = 0,
       coalesce(string_agg(format('%s %s->%s', g.kind, g.product_a, g.product_b), ', ')
                FILTER (WHERE e.run IS NULL), '')
FROM generate_series(1, NCASES) r LEFT JOIN ref_got g ON g.run = r
LEFT JOIN ref_expected e ON g.run = e.run AND g.kind = e.kind AND g.product_a = e.a AND g.product_b = e.b
GROUP BY r
ORDER BY 1;""".replace('NCASES', str(len(CASES))))
    print("\n".join(out))


def main():
    orders, items = generate()
    if sys.argv[1:] == ['--sql']:
        print_sql(orders, items)
        return
    print("orders %d (with items %d), items %d" % (len(orders), len({o for o, _ in items}), len(items)))
    for window, min_support, min_confidence in CASES:
        rows = reference_rows(orders, items, window, min_support, min_confidence)
        kinds = {}
        for r in rows:
            kinds[r[0]] = kinds.get(r[0], 0) + 1
        print("window %d days, min_support %s, min_confidence %s: %s"
              % (window, min_support, min_confidence, kinds))
        for r in sorted(rows, key=lambda r: -r[9])[:3]:
            print("   ", r)


if __name__ == '__main__':
    main()
