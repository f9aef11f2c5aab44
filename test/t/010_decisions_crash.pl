# Decisions by the workers, through crashes.  Eight clients insert (some of
# them dated days back: the late path), update and delete orders of 200
# customers (pgbench) while the workers take the changed customers, decide
# their segments and journeys, and fire the steps.  In each round a worker
# is killed with SIGKILL mid-batch (a crash restart of the whole server) or
# the server is stopped with "immediate" and started again.  Afterwards
# everything drains, and the test proves: no change mark is stuck, the
# state equals a recomputation from the orders (verify_state() is empty),
# every open membership is what the rules say of the final state (a
# refresh_segments() then changes nothing), every customer with orders was
# enrolled by its first order, and every (enrollment, step) is in the
# outbox exactly once.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('decisions_crash');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'post_purchase'
restart_after_crash = on
post_purchase.databases = 'shop'
post_purchase.workers_per_database = 2
post_purchase.naptime = 100
post_purchase.decision_batch_size = 20
max_connections = 40
});
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE shop');
$node->safe_psql(
	'shop', q{
SET client_min_messages = warning;
CREATE EXTENSION post_purchase;
CREATE TABLE orders (order_id bigserial PRIMARY KEY, customer_id bigint NOT NULL,
					 ordered_at timestamptz NOT NULL, amount numeric NOT NULL);
SELECT post_purchase.track_orders('orders');
-- the RFM segments move with the cut points that every refresh recomputes
DELETE FROM post_purchase.segments WHERE rule LIKE 'rfm_segment%';
SELECT post_purchase.create_segment('t_big', 'revenue >= 300');
SELECT post_purchase.create_segment('t_repeat', 'frequency >= 2');
UPDATE post_purchase.settings SET value = '00:00' WHERE name IN ('quiet_hours_start', 'quiet_hours_end');
UPDATE post_purchase.settings SET value = '0' WHERE name = 'frequency_cap_messages';
SELECT post_purchase.create_journey('t_first', 'first_order');
SELECT post_purchase.add_step('t_first', 'thanks', '0', 'webhook', 'thanks');
SELECT post_purchase.enable_journey('t_first');
});
is($node->safe_psql('shop', 'SHOW post_purchase.decide_in'), 'auto', 'decisions are left to the default');

my $script = $node->basedir . '/orders.sql';
PostgreSQL::Test::Utils::append_to_file(
	$script, q{\set c random(1, 200)
\set op random(1, 10)
\set days random(0, 20)
\set amount random(1, 100)
\if :op <= 6
INSERT INTO orders (customer_id, ordered_at, amount) VALUES (:c, now() - :days * interval '1 day', :amount);
\elif :op <= 8
UPDATE orders SET amount = amount + 1 WHERE order_id = (SELECT max(order_id) FROM orders WHERE customer_id = :c);
\else
DELETE FROM orders WHERE order_id = (SELECT min(order_id) FROM orders WHERE customer_id = :c);
\endif
});

sub start_load
{
	my ($seconds) = @_;
	my ($out, $err) = ('', '');
	return IPC::Run::start(
		[
			'pgbench', '-n', '-h', $node->host, '-p', $node->port,
			'-c', '8', '-j', '2', '-T', $seconds, '-R', '400', '-f', $script, 'shop'
		],
		'>', \$out, '2>', \$err);
}

# a worker's pid, once it is inside a transaction (a batch of decisions or steps)
my $hits = 0;
sub busy_worker_pid
{
	$node->poll_query_until('shop',
		q{SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'post_purchase worker'})
	  or die 'no post_purchase worker';
	for (1 .. 200)
	{
		my $pid = $node->safe_psql('shop',
			q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'post_purchase worker'
			  AND xact_start IS NOT NULL LIMIT 1});
		if ($pid ne '')
		{
			$hits++;
			return $pid;
		}
	}
	return $node->safe_psql('shop',
		q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'post_purchase worker' LIMIT 1});
}

my @actions = ('sigkill', 'immediate', 'sigkill', 'immediate', 'sigkill');
my $round = 0;
for my $action (@actions)
{
	$round++;
	my $load = start_load(4);
	sleep(2);
	my $log_offset = -s $node->logfile;
	if ($action eq 'sigkill')
	{
		my $pid = busy_worker_pid();
		ok(kill('KILL', $pid), "round $round: SIGKILL to worker $pid");
		$node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
		$node->wait_for_log(qr/database system is ready to accept connections/, $log_offset);
	}
	else
	{
		busy_worker_pid();
		$node->stop('immediate');
		pass("round $round: immediate stop");
		$node->start;
	}
	# the clients of a crashed or stopped server fail; that is the point
	eval { $load->finish; };
	eval { $load->kill_kill; };
}
note("$hits of " . scalar(@actions) . " blows landed while a worker was in a transaction");
cmp_ok($hits, '>=', 3, 'most blows landed mid-batch');

# one last round without a blow, then drain
my $load = start_load(3);
eval { $load->finish; };
my $orders = $node->safe_psql('shop', 'SELECT count(*) FROM orders');
cmp_ok($orders, '>', 300, "orders are left after the rounds ($orders)");

ok( $node->poll_query_until('shop', q{SELECT customers = 0 FROM post_purchase.decision_backlog}),
	'every change was decided: no mark is stuck');
ok( $node->poll_query_until(
		'shop', q{SELECT count(*) = 0 FROM post_purchase.enrollments WHERE status = 'active'}),
	'every enrollment completed');
is($node->safe_psql('shop', 'SELECT count(*) FROM post_purchase.verify_state()'),
	'0', 'the state equals a recomputation from the orders');
is( $node->safe_psql(
		'shop', q{SELECT count(*) FROM post_purchase.customer_state WHERE order_seq <> decided_seq}),
	'0', 'every inserted order was decided');

# the stored scores (src/scores.c): written with each decision and swept by
# the first worker after each change of the context; all count in the end,
# and customer_metrics reads from them what metrics_of() computes
ok( $node->poll_query_until(
		'shop', q{
SELECT count(*) FILTER (WHERE NOT coalesce(b.scored, false)) = 0
FROM post_purchase.customer_summaries_in_context b}),
	'every customer\'s stored scores count');
is( $node->safe_psql(
		'shop', q{
SELECT count(*) FROM (
	SELECT m.* FROM post_purchase.customer_state s
	CROSS JOIN (SELECT c.*, post_purchase.today_in_zone(c.pinned_today, c.time_zone) AS today
				FROM post_purchase.metrics_context c) ctx
	CROSS JOIN LATERAL post_purchase.metrics_of(s, ctx.today, ctx.lapsed_after_days, ctx.at_risk_after_days,
												ctx.clv_monthly_discount, ctx.model, ctx.cuts) m
	EXCEPT SELECT * FROM post_purchase.customer_metrics) d}),
	'0', 'customer_metrics over the stored scores equals metrics_of() of every state');

# every open membership follows the rules over the final state
is( $node->safe_psql(
		'shop', q{
SELECT count(*) FROM post_purchase.customer_state s
WHERE (s.revenue >= 300) <> post_purchase.in_segment(s.customer_id, 't_big')
   OR (s.purchase_days >= 3) <> post_purchase.in_segment(s.customer_id, 't_repeat')}),
	'0', 'the custom segments follow the rules over every final state');
is( $node->safe_psql(
		'shop', q{
SELECT count(*) FROM post_purchase.segment_memberships m
WHERE m.exited_at IS NULL AND NOT EXISTS (SELECT FROM post_purchase.customer_state s WHERE s.customer_id = m.customer_id)}),
	'0', 'a customer without orders is in no segment');
# the refresh corrects what it finds: name the segments it had to correct
# and the memberships they had before, or a failure says nothing
my $before = $node->safe_psql(
	'shop', q{SELECT string_agg(format('%s %s %s %s', m.segment, m.customer_id, m.entered_at, m.exited_at), E'\n')
FROM post_purchase.segment_memberships m});
my $corrected = $node->safe_psql(
	'shop', q{SELECT coalesce(string_agg(format('%s +%s -%s', r.segment, r.entered, r.exited), ', '), '')
FROM post_purchase.refresh_segments() r WHERE r.entered + r.exited > 0});
is($corrected, '', 'refresh_segments() finds every membership already right')
  or diag("memberships before the refresh:\n$before\nstates:\n"
	  . $node->safe_psql('shop', q{SELECT string_agg(format('%s', s), E'\n') FROM post_purchase.customer_state s}));

# journeys: the first order of every customer enrolled it, each step once
is( $node->safe_psql(
		'shop', q{
SELECT count(*) FROM post_purchase.customer_state s
WHERE NOT EXISTS (SELECT FROM post_purchase.enrollments e WHERE e.customer_id = s.customer_id AND e.journey = 't_first')}),
	'0', 'every customer with orders was enrolled by the first one');
is( $node->safe_psql(
		'shop', q{SELECT count(*) FROM post_purchase.enrollments WHERE journey = 't_first'}),
	$node->safe_psql('shop', 'SELECT count(*) FROM (SELECT DISTINCT enrollment_id, step FROM post_purchase.outbox) x'),
	'one message per enrollment');
is( $node->safe_psql(
		'shop', q{SELECT count(*) - count(DISTINCT (enrollment_id, step)) FROM post_purchase.outbox}),
	'0', 'each (enrollment, step) is in the outbox exactly once');
ok($node->log_contains(qr/database system was not properly shut down; automatic recovery in progress/),
	'the server ran crash recovery');

$node->stop;
done_testing();
