# A backend killed with SIGKILL in the middle of an nps() aggregate makes the
# postmaster reinitialize (restart_after_crash) and replay WAL; afterwards the
# server accepts connections again with post_purchase preloaded, and the
# extension, the survey data and the aggregate's answer are what they were.
# Also: post_purchase.* is a reserved GUC prefix, so a typo in a setting is an
# error in SET and a warning (and no setting) in postgresql.conf.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('crash_restart');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'post_purchase'
restart_after_crash = on
});
$node->start;

is($node->safe_psql('postgres', 'SHOW shared_preload_libraries'),
	'post_purchase', 'post_purchase is preloaded');

# Survey answers; half of them are written after a checkpoint, so crash
# recovery has committed work to replay.
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION post_purchase;
CREATE TABLE survey (id int PRIMARY KEY, score int);
INSERT INTO survey SELECT i, (i * 7 + i / 13) % 11 FROM generate_series(1, 50000) i;
CHECKPOINT;
INSERT INTO survey SELECT i, CASE WHEN i % 3 = 0 THEN 10 ELSE (i * 5) % 11 END
FROM generate_series(50001, 100000) i;
});

# The answer as the plain SQL formula gives it, and as the aggregates give it.
my $formula_sql = q{
SELECT round(100.0 * (count(*) FILTER (WHERE score >= 9) - count(*) FILTER (WHERE score <= 6))
			 / count(score), 12)
FROM survey};
my $nps_sql = q{SELECT round(post_purchase.nps(score), 12) FROM survey};
my $summary_sql = q{SELECT post_purchase.nps_summary(score) FROM survey};

my $expected = $node->safe_psql('postgres', $formula_sql);
my $nps_before = $node->safe_psql('postgres', $nps_sql);
my $summary_before = $node->safe_psql('postgres', $summary_sql);
my $version_before = $node->safe_psql('postgres',
	q{SELECT extversion FROM pg_extension WHERE extname = 'post_purchase'});
is($nps_before, $expected, 'nps equals the count FILTER formula before the crash');
isnt($version_before, '', 'extension installed');

# One session runs a long nps(): the survey rows are accumulated, then the
# query sleeps in pg_sleep() inside the same aggregate.  A serial plan keeps
# the Append's order, and the sleep, in this backend.
my $killme = $node->background_psql('postgres', on_error_stop => 0);
$killme->query_safe('SET max_parallel_workers_per_gather = 0');
my $pid = $killme->query_safe('SELECT pg_backend_pid()');
like($pid, qr/^\d+$/, 'got the backend pid of the session to kill');
$killme->query_until(
	qr/started/, q{
\echo started
SELECT post_purchase.nps(score)
FROM (SELECT score FROM survey UNION ALL SELECT 5 FROM pg_sleep(600)) answers;
});

# Another, idle session: a crash restart must end it too.
my $bystander = $node->background_psql('postgres', on_error_stop => 0);
my $bystander_pid = $bystander->query_safe('SELECT pg_backend_pid()');

ok( $node->poll_query_until(
		'postgres', qq{
SELECT count(*) = 1 FROM pg_stat_activity
WHERE pid = $pid AND state = 'active' AND wait_event = 'PgSleep'
  AND query LIKE '%post_purchase.nps(score)%'}),
	'the nps() query is running and has reached its pg_sleep');

my $log_offset = -s $node->logfile;

# kill -9 the backend in the middle of the aggregate
ok(kill('KILL', $pid), "sent SIGKILL to backend $pid");

$node->wait_for_log(qr/server process \(PID $pid\) was terminated by signal 9/,
	$log_offset);
$node->wait_for_log(qr/all server processes terminated; reinitializing/,
	$log_offset);
$node->wait_for_log(qr/database system is ready to accept connections/,
	$log_offset);
pass('the postmaster reinitialized after the backend was killed');

# Both clients see their connection end: the killed one at once, the idle
# bystander at its next query.
ok( pump_until(
		$killme->{run}, $killme->{timeout}, \$killme->{stderr},
		qr/server closed the connection unexpectedly|connection to server was lost/m),
	'the killed session lost its connection');
$bystander->{stdin} .= "SELECT 1;\n";
ok( pump_until(
		$bystander->{run}, $bystander->{timeout}, \$bystander->{stderr},
		qr/terminating connection because of crash of another server process|server closed the connection unexpectedly|connection to server was lost|could not send data to server/m
	),
	'the bystander session was ended by the crash restart');
# their psql processes have nothing left to do
for my $session ($killme, $bystander)
{
	eval { $session->{run}->kill_kill; };
}

ok($node->poll_query_until('postgres', 'SELECT 1', '1'),
	'a new connection succeeds after crash recovery');
ok($node->log_contains(qr/database system was not properly shut down; automatic recovery in progress/,
		$log_offset),
	'the server ran crash recovery');
is( $node->safe_psql(
		'postgres', qq{
SELECT count(*) FROM pg_stat_activity WHERE pid IN ($pid, $bystander_pid)}),
	'0',
	'the killed backend and the bystander are gone from pg_stat_activity');

is($node->safe_psql('postgres', 'SHOW shared_preload_libraries'),
	'post_purchase', 'post_purchase is still preloaded');
is( $node->safe_psql(
		'postgres',
		q{SELECT extversion FROM pg_extension WHERE extname = 'post_purchase'}),
	$version_before,
	'the extension is still installed, at the same version');
is($node->safe_psql('postgres', 'SELECT count(*) FROM survey'),
	'100000', 'every committed survey answer survived, before and after the checkpoint');
is($node->safe_psql('postgres', $formula_sql),
	$expected, 'the count FILTER formula gives the same answer after recovery');
is($node->safe_psql('postgres', $nps_sql),
	$nps_before, 'nps gives the same answer after recovery');
is($node->safe_psql('postgres', $summary_sql),
	$summary_before, 'nps_summary gives the same answer after recovery');

# The same aggregate again, and the server keeps running.
my $killme2 = $node->background_psql('postgres', on_error_stop => 0);
is($killme2->query_safe($nps_sql), $nps_before, 'a new session runs nps normally');
$killme2->quit;

# post_purchase.* is reserved (MarkGUCPrefixReserved in _PG_init): a typo is
# an error, while an unreserved prefix still takes a placeholder setting.
my ($ret, $stdout, $stderr) =
  $node->psql('postgres', 'SET post_purchase.nonexistent = 1');
isnt($ret, 0, 'SET post_purchase.nonexistent fails');
like(
	$stderr,
	qr/invalid configuration parameter name "post_purchase\.nonexistent"/,
	'SET of an unknown post_purchase.* setting names the parameter');
like($stderr, qr/"post_purchase" is a reserved prefix/,
	'and says the prefix is reserved');
($ret, $stdout, $stderr) = $node->psql('postgres',
	q{SELECT set_config('post_purchase.typo', 'on', false)});
isnt($ret, 0, 'set_config of an unknown post_purchase.* setting fails too');
is( $node->safe_psql(
		'postgres', q{SET not_post_purchase.placeholder = 1; SHOW not_post_purchase.placeholder}),
	'1',
	'an unreserved prefix still accepts a placeholder setting');

# In postgresql.conf, the typo is dropped with a warning and the server starts.
$node->append_conf('postgresql.conf', "post_purchase.typo = on\n");
$log_offset = -s $node->logfile;
$node->restart;
ok( $node->log_contains(
		qr/invalid configuration parameter name "post_purchase\.typo", removing it/,
		$log_offset),
	'a post_purchase.* typo in postgresql.conf is reported at startup');
($ret, $stdout, $stderr) = $node->psql('postgres', 'SHOW post_purchase.typo');
isnt($ret, 0, 'and the typo is not a setting');
is($node->safe_psql('postgres', $nps_sql),
	$nps_before, 'nps still gives the same answer after a clean restart');

$node->stop;
done_testing();
