# Exactly once into the outbox, through crashes.  Eight clients insert orders
# (pgbench) while the background worker fires a three-step journey for every
# order; in each round the worker is killed with SIGKILL (a crash restart of
# the whole server), terminated with pg_terminate_backend(), or the server is
# stopped with "immediate" and started again, while batches are in flight.
# Afterwards everything drains, and the test proves: every committed order
# enrolled its customer, every enrollment completed, every (enrollment, step)
# is in the outbox exactly once with a fired outcome, and nothing is stuck.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $node = PostgreSQL::Test::Cluster->new('exactly_once');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'post_purchase'
restart_after_crash = on
post_purchase.databases = 'shop'
post_purchase.naptime = 100
post_purchase.batch_size = 50
max_connections = 40
});
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE shop');
$node->safe_psql(
	'shop', q{
CREATE EXTENSION post_purchase;
CREATE TABLE orders (order_id bigserial PRIMARY KEY, customer_id bigint NOT NULL,
					 ordered_at timestamptz NOT NULL, amount numeric NOT NULL);
CREATE SEQUENCE customers;
SELECT post_purchase.track_orders('orders');
-- no segment work per order: this test is about the journeys
-- (the seed journey entered on the detractors segment first)
DELETE FROM post_purchase.journeys WHERE segment IS NOT NULL;
DELETE FROM post_purchase.segments;
UPDATE post_purchase.settings SET value = '00:00' WHERE name IN ('quiet_hours_start', 'quiet_hours_end');
UPDATE post_purchase.settings SET value = '0' WHERE name = 'frequency_cap_messages';
SELECT post_purchase.create_journey('three_steps', 'every_order');
SELECT post_purchase.add_step('three_steps', 'now', '0', 'webhook', 'thanks');
SELECT post_purchase.add_step('three_steps', 'soon', '1 second', 'webhook', 'guide');
SELECT post_purchase.add_step('three_steps', 'later', '2 seconds', 'webhook', 'review');
SELECT post_purchase.enable_journey('three_steps');
});

# one order per transaction, each for a new customer, so that no enrollment
# replaces another and every order must have its own three messages
my $script = $node->basedir . '/order.sql';
PostgreSQL::Test::Utils::append_to_file($script,
	"INSERT INTO orders (customer_id, ordered_at, amount) VALUES (nextval('customers'), now(), 1);\n");

sub start_orders
{
	my ($seconds) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[
			'pgbench', '-n', '-h', $node->host, '-p', $node->port,
			'-c', '8', '-j', '2', '-T', $seconds, '-R', '300', '-f', $script, 'shop'
		],
		'>', \$out, '2>', \$err);
	return $h;
}

sub worker_pid
{
	my $pid = '';
	$node->poll_query_until('shop',
		q{SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'post_purchase worker'})
	  or die 'no post_purchase worker';
	$pid = $node->safe_psql('shop',
		q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'post_purchase worker' LIMIT 1});
	return $pid;
}

# the worker's pid once it is inside a batch (a transaction that fires steps)
my $hits = 0;
sub busy_worker_pid
{
	my $pid = worker_pid();
	for (1 .. 100)
	{
		if ($node->safe_psql('shop',
				"SELECT xact_start IS NOT NULL FROM pg_stat_activity WHERE pid = $pid") eq 't')
		{
			$hits++;
			last;
		}
	}
	return $pid;
}

ok(worker_pid() =~ /^\d+$/, 'the worker of database shop is running');

my @actions = ('sigkill', 'terminate', 'immediate', 'sigkill', 'immediate', 'terminate');
my $round = 0;
for my $action (@actions)
{
	$round++;
	my $load = start_orders(4);
	# let orders and firing get going, so the blow lands mid-batch
	sleep(2);
	my $log_offset = -s $node->logfile;
	if ($action eq 'sigkill')
	{
		my $pid = busy_worker_pid();
		ok(kill('KILL', $pid), "round $round: SIGKILL to worker $pid");
		$node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
		$node->wait_for_log(qr/database system is ready to accept connections/, $log_offset);
	}
	elsif ($action eq 'terminate')
	{
		my $pid = busy_worker_pid();
		is($node->safe_psql('shop', "SELECT pg_terminate_backend($pid)"), 't',
			"round $round: pg_terminate_backend(worker $pid)");
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
	ok(worker_pid() =~ /^\d+$/, "round $round: a worker is running again after $action");
}

note("$hits of " . scalar(@actions) . " blows landed while the worker was in a transaction");
cmp_ok($hits, '>=', 3, 'most blows landed mid-batch');

my $orders = $node->safe_psql('shop', 'SELECT count(*) FROM orders');
cmp_ok($orders, '>', 500, "orders were committed during the rounds ($orders)");

# drain: every enrollment ends once its last step (2 s after the order) fired
ok( $node->poll_query_until(
		'shop', q{SELECT count(*) = 0 FROM post_purchase.enrollments WHERE status = 'active'}),
	'every enrollment completed; none is stuck');

is( $node->safe_psql(
		'shop', q{
SELECT count(*) FROM orders o
WHERE NOT EXISTS (SELECT FROM post_purchase.enrollments e WHERE e.customer_id = o.customer_id::text)}),
	'0', 'every committed order enrolled its customer');
is($node->safe_psql('shop', 'SELECT count(*) FROM post_purchase.enrollments'),
	$orders, 'one enrollment per committed order, no more');
is( $node->safe_psql(
		'shop', q{SELECT count(*) FROM post_purchase.enrollments WHERE status <> 'completed'}),
	'0', 'all enrollments completed');
is($node->safe_psql('shop', 'SELECT count(*) FROM post_purchase.outbox'),
	3 * $orders, 'three messages per order in the outbox');
is( $node->safe_psql(
		'shop', 'SELECT count(*) FROM (SELECT DISTINCT enrollment_id, step FROM post_purchase.outbox) x'),
	3 * $orders, 'each (enrollment, step) exactly once');
is( $node->safe_psql(
		'shop', q{
SELECT count(*) FROM post_purchase.step_outcomes s
JOIN post_purchase.outbox o ON o.id = s.outbox_id AND o.enrollment_id = s.enrollment_id AND o.step = s.step
WHERE s.outcome = 'fired'}),
	3 * $orders, 'every message has its fired outcome, and every outcome its message');
is( $node->safe_psql(
		'shop', q{
SELECT count(*) FROM post_purchase.outbox o JOIN post_purchase.enrollments e USING (enrollment_id)
WHERE o.aggregateid <> e.customer_id}),
	'0', "every message went to its enrollment's customer");

ok($node->log_contains(qr/database system was not properly shut down; automatic recovery in progress/),
	'the server ran crash recovery');

$node->stop;
done_testing();
