# The background workers: a launcher started from shared_preload_libraries
# runs a worker in each database of post_purchase.databases.  The worker
# idles where the extension is missing, calls the step functions where it is
# (stand-ins here, created under the real names), survives their errors,
# wakes at the commit of wake_workers(), sleeps until next_due_at(), comes
# back after pg_terminate_backend and after a crash restart, follows reloads
# of the settings, and steps aside for DROP DATABASE.  Nothing runs on a
# standby, and without the preload wake_workers() does nothing.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = PostgreSQL::Test::Cluster->new('workers');
$node->init(allows_streaming => 1);
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'post_purchase'
restart_after_crash = on
post_purchase.databases = 'shop'
post_purchase.naptime = '100ms'
post_purchase.batch_size = 100
});
$node->start;

# the workers of a database, as pg_stat_activity shows them
sub workers
{
	my ($db) = @_;
	return $node->safe_psql(
		'postgres', qq{
SELECT string_agg(application_name, ',' ORDER BY application_name)
FROM pg_stat_activity
WHERE backend_type = 'post_purchase worker' AND datname = '$db'});
}

sub worker_pid
{
	my ($db) = @_;
	return $node->safe_psql(
		'postgres', qq{
SELECT pid FROM pg_stat_activity
WHERE backend_type = 'post_purchase worker' AND datname = '$db'});
}

sub reload_with
{
	my ($settings) = @_;
	$node->safe_psql('postgres', "$settings; SELECT pg_reload_conf();");
	# the workers take the reload with their next loop
	usleep(500_000);
}

# --- the launcher, and a listed database that does not exist yet

ok( $node->poll_query_until(
		'postgres', q{
SELECT count(*) = 1 FROM pg_stat_activity
WHERE backend_type = 'post_purchase launcher'
  AND application_name = 'post_purchase launcher' AND datname IS NULL}),
	'the launcher runs, connected to no database');
ok( $node->wait_for_log(
		qr/database "shop" of post_purchase\.databases does not exist or does not allow connections/),
	'a listed database that does not exist is logged');
$node->safe_psql('postgres', 'CREATE EXTENSION post_purchase');
is($node->safe_psql('postgres', 'SELECT count(*) FROM post_purchase.worker_status'),
	'0', 'no worker while the database does not exist');

# --- CREATE DATABASE: the launcher is woken at its commit

$node->safe_psql('postgres', 'CREATE DATABASE shop');
ok( $node->poll_query_until(
		'postgres', q{
SELECT count(*) = 1 FROM pg_stat_activity
WHERE backend_type = 'post_purchase worker' AND datname = 'shop'
  AND application_name = 'post_purchase worker 1 for database shop'}),
	'the worker of the new database shows in pg_stat_activity');
my $pid = worker_pid('shop');
like($pid, qr/^\d+$/, 'one worker in shop');
like(
	$node->safe_psql(
		'postgres', q{
SELECT format('%s|%s|%s|%s|%s|%s', database, worker, pid, started_at IS NOT NULL,
			  last_run_at IS NULL, steps_fired)
FROM post_purchase.worker_status}),
	qr/^shop\|1\|$pid\|t\|t\|0$/,
	'worker_status shows it, with no run yet');

# --- without the extension in its database, the worker idles

sleep(1);
is(worker_pid('shop'), $pid, 'the worker idles in a database without the extension');
is($node->safe_psql('postgres', 'SELECT last_run_at IS NULL FROM post_purchase.worker_status'),
	't', 'and has run nothing');

# --- the extension, with the step functions replaced by stand-ins; the
# --- worker's functions that are missing are skipped

my $stand_ins_common = q{
CREATE EXTENSION post_purchase;
DO $$
DECLARE
	f text;
BEGIN
	FOREACH f IN ARRAY ARRAY['post_purchase.enroll_due()', 'post_purchase.fire_due_steps(integer)',
		'post_purchase.next_due_at()', 'post_purchase.refresh_segments()',
		'post_purchase.refresh_models()', 'post_purchase.outbox_purge()'] LOOP
		IF pg_catalog.to_regprocedure(f) IS NOT NULL THEN
			EXECUTE format('ALTER EXTENSION post_purchase DROP FUNCTION %s', f);
			EXECUTE format('DROP FUNCTION %s', f);
		END IF;
	END LOOP;
END
$$;
CREATE TABLE public.due (
	id serial PRIMARY KEY,
	due_at timestamptz NOT NULL DEFAULT now(),
	poison boolean NOT NULL DEFAULT false,
	fired_at timestamptz,
	fired_by integer);
CREATE TABLE public.calls (
	fn text,
	search_path text,
	arg integer,
	result integer,
	at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION post_purchase.enroll_due() RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.calls (fn, search_path) VALUES ('enroll_due', current_setting('search_path'));
	RETURN 0;
END $$;
CREATE FUNCTION post_purchase.next_due_at() RETURNS timestamptz LANGUAGE sql AS $$
	SELECT min(due_at) FROM public.due WHERE fired_at IS NULL
$$;
CREATE FUNCTION post_purchase.refresh_segments() RETURNS void LANGUAGE sql AS $$
	INSERT INTO public.calls (fn, search_path) VALUES ('refresh_segments', current_setting('search_path'))
$$;
};
# one transaction: a worker that saw the extension before its stand-ins
# would make its first scheduled calls to the real functions (or to none)
$node->safe_psql('shop', "BEGIN; $stand_ins_common COMMIT;");

ok( $node->poll_query_until(
		'postgres', 'SELECT last_run_at IS NOT NULL FROM post_purchase.worker_status'),
	'after CREATE EXTENSION the worker runs');
ok($node->poll_query_until('shop', q{SELECT count(*) > 0 FROM calls WHERE fn = 'enroll_due'}),
	'it calls enroll_due()');
is( $node->safe_psql(
		'shop', q{SELECT string_agg(DISTINCT search_path, ';') FROM calls}),
	'pg_catalog, pg_temp',
	'with search_path locked to pg_catalog, pg_temp');
# enroll_due() commits before the scheduled calls of the same round run
$node->poll_query_until('shop', q{SELECT count(*) > 0 FROM calls WHERE fn = 'refresh_segments'});
is( $node->safe_psql(
		'shop', q{SELECT count(*) FROM calls WHERE fn = 'refresh_segments'}),
	'1',
	'refresh_segments() is called once on start, then after its interval');

$node->safe_psql('shop', 'INSERT INTO due SELECT FROM generate_series(1, 10)');
sleep(1);
is($node->safe_psql('shop', 'SELECT count(*) FROM due WHERE fired_at IS NULL'),
	'10', 'without fire_due_steps() nothing fires');
is( $node->safe_psql(
		'postgres', 'SELECT format(\'%s|%s\', pid, last_error IS NULL) FROM post_purchase.worker_status'),
	"$pid|t",
	'and a missing function is neither an error nor a crash');

# fire_due_steps(): claims up to batch due rows; a poisoned row makes it fail
$node->safe_psql(
	'shop', q{
CREATE FUNCTION post_purchase.fire_due_steps(batch integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	n integer;
	bad integer;
BEGIN
	WITH claimed AS (
		SELECT id, poison FROM public.due
		WHERE fired_at IS NULL AND due_at <= now()
		ORDER BY id LIMIT batch FOR UPDATE SKIP LOCKED),
	fired AS (
		UPDATE public.due d SET fired_at = clock_timestamp(), fired_by = pg_backend_pid()
		FROM claimed c WHERE d.id = c.id RETURNING c.poison)
	SELECT count(*), count(*) FILTER (WHERE poison) INTO n, bad FROM fired;
	IF bad > 0 THEN
		RAISE EXCEPTION 'poisoned step';
	END IF;
	INSERT INTO public.calls (fn, search_path, arg, result)
	VALUES ('fire_due_steps', current_setting('search_path'), batch, n);
	RETURN n;
END $$;
});
ok($node->poll_query_until('shop', 'SELECT count(*) = 0 FROM due WHERE fired_at IS NULL'),
	'once fire_due_steps() exists, the due steps fire');
is($node->safe_psql('shop', 'SELECT count(DISTINCT fired_by) FROM due'),
	'1', 'all by the one worker');
is($node->safe_psql('postgres', 'SELECT steps_fired FROM post_purchase.worker_status'),
	'10', 'worker_status counts the steps fired');
# autovacuum reads dead tuples from the cumulative statistics, and a
# background worker's reach them only when it reports them
ok( $node->poll_query_until(
		'shop', q{SELECT n_tup_upd >= 10 FROM pg_stat_user_tables WHERE relid = 'public.due'::regclass}),
	"the worker's updates reach pg_stat_user_tables, so autovacuum sees its dead tuples");

# --- a long naptime: only wake_workers() at commit, or next_due_at(), wakes it

reload_with(q{ALTER SYSTEM SET post_purchase.naptime = '60s'});
$node->safe_psql('shop', 'INSERT INTO due DEFAULT VALUES');
sleep(1);
is($node->safe_psql('shop', 'SELECT count(*) FROM due WHERE fired_at IS NULL'),
	'1', 'with naptime 60s, a new due step waits');

my $session = $node->background_psql('shop');
$session->query_safe('BEGIN');
$session->query_safe('SELECT post_purchase.wake_workers()');
$session->query_safe('SELECT post_purchase.wake_workers()');
sleep(1);
is($node->safe_psql('shop', 'SELECT count(*) FROM due WHERE fired_at IS NULL'),
	'1', 'wake_workers() does not wake the worker before the commit');
$session->query_safe('ROLLBACK');
sleep(1);
is($node->safe_psql('shop', 'SELECT count(*) FROM due WHERE fired_at IS NULL'),
	'1', 'nor at a rollback');
$session->query_safe('BEGIN');
$session->query_safe('SELECT post_purchase.wake_workers()');
my $t0 = time();
$session->query_safe('COMMIT');
ok($node->poll_query_until('shop', 'SELECT count(*) = 0 FROM due WHERE fired_at IS NULL'),
	'wake_workers() wakes the worker at the commit');
cmp_ok(time() - $t0, '<', 10, 'long before the naptime is over');

# 250 steps and a wake-up: batches of 100 while they come back full
my $mark = $node->safe_psql('shop', 'SELECT clock_timestamp()');
$node->safe_psql('shop',
	'INSERT INTO due SELECT FROM generate_series(1, 250); SELECT post_purchase.wake_workers()');
ok($node->poll_query_until('shop', 'SELECT count(*) = 0 FROM due WHERE fired_at IS NULL'),
	'250 due steps fire after one wake-up');
is( $node->safe_psql(
		'shop', qq{
SELECT string_agg(result::text, ',' ORDER BY at) FROM calls
WHERE fn = 'fire_due_steps' AND at > '$mark' AND result > 0}),
	'100,100,50',
	'in batches of batch_size, called again while a batch comes back full');
is($node->safe_psql('postgres', 'SELECT steps_fired FROM post_purchase.worker_status'),
	'261', 'steps_fired is cumulative');

# a step due in 2 s: the worker sleeps until next_due_at(), not the naptime
$node->safe_psql('shop',
	q{INSERT INTO due (due_at) VALUES (now() + interval '2 seconds'); SELECT post_purchase.wake_workers()});
ok($node->poll_query_until('shop', 'SELECT count(*) = 0 FROM due WHERE fired_at IS NULL'),
	'a step due later fires without a wake-up');
is( $node->safe_psql(
		'shop', q{
SELECT fired_at >= due_at AND fired_at < due_at + interval '5 seconds'
FROM due ORDER BY id DESC LIMIT 1}),
	't',
	'when next_due_at() said, not a naptime later');

# wake_interval: commits that wake the worker soon after its last look are
# gathered, and what they made due fires in one batch, not one call each
reload_with(q{ALTER SYSTEM SET post_purchase.wake_interval = '3s'});
$mark = $node->safe_psql('shop', 'SELECT clock_timestamp()');
$node->safe_psql('shop',
	join('', map { 'INSERT INTO due DEFAULT VALUES; SELECT post_purchase.wake_workers();' } 1 .. 20));
ok($node->poll_query_until('shop', 'SELECT count(*) = 0 FROM due WHERE fired_at IS NULL'),
	'20 steps made due by 20 commits fire');
cmp_ok(
	$node->safe_psql(
		'shop', qq{SELECT count(*) FROM calls WHERE fn = 'fire_due_steps' AND at > '$mark' AND result > 0}),
	'<=', 2,
	'in at most two calls: the first commit wakes the worker, the next ones find it gathering');
is( $node->safe_psql(
		'shop', qq{
SELECT max(fired_at) - min(fired_at) < interval '10 seconds' FROM due WHERE fired_at > '$mark'}),
	't',
	'and within the wake interval, not the 60 s naptime');
# a gathering worker still heeds reloads (and SIGTERM and stop requests):
# with a 10 s interval a step waits, and a reload ends the wait at once
reload_with(q{ALTER SYSTEM SET post_purchase.wake_interval = '10s'});
$node->safe_psql('shop', 'INSERT INTO due DEFAULT VALUES; SELECT post_purchase.wake_workers()');
sleep(1);
is($node->safe_psql('shop', 'SELECT count(*) FROM due WHERE fired_at IS NULL'),
	'1', 'with wake_interval 10s, a step made due right after a look waits');
$t0 = time();
reload_with(q{ALTER SYSTEM RESET post_purchase.wake_interval});
ok($node->poll_query_until('shop', 'SELECT count(*) = 0 FROM due WHERE fired_at IS NULL'),
	'a reload ends the wait');
cmp_ok(time() - $t0, '<', 5, 'before the interval is over');

# --- an error is recorded, and the worker keeps going

my $log_offset = -s $node->logfile;
$node->safe_psql('shop',
	'INSERT INTO due (poison) VALUES (true); SELECT post_purchase.wake_workers()');
ok( $node->poll_query_until(
		'postgres', q{
SELECT last_error = 'fire_due_steps: poisoned step' AND last_error_at IS NOT NULL
FROM post_purchase.worker_status}),
	'the error of fire_due_steps() is in worker_status');
ok($node->wait_for_log(qr/ERROR:  poisoned step/, $log_offset), 'and in the log');
is($node->safe_psql('shop', 'SELECT count(*) FROM due WHERE fired_at IS NULL'),
	'1', 'the failed batch was rolled back');
is(worker_pid('shop'), $pid, 'the worker survived the error');
$node->safe_psql('shop',
	'UPDATE due SET poison = false; SELECT post_purchase.wake_workers()');
ok($node->poll_query_until('shop', 'SELECT count(*) = 0 FROM due WHERE fired_at IS NULL'),
	'once the step is fixed, it fires');

# --- enabled = off: idle

reload_with(q{ALTER SYSTEM SET post_purchase.enabled = off});
my $last_run = $node->safe_psql('postgres', 'SELECT last_run_at FROM post_purchase.worker_status');
$node->safe_psql('shop', 'INSERT INTO due DEFAULT VALUES; SELECT post_purchase.wake_workers()');
sleep(1);
is($node->safe_psql('shop', 'SELECT count(*) FROM due WHERE fired_at IS NULL'),
	'1', 'with post_purchase.enabled off, nothing fires');
is($node->safe_psql('postgres', 'SELECT last_run_at FROM post_purchase.worker_status'),
	$last_run, 'and the worker does not run');
is(worker_pid('shop'), $pid, 'but it is still there');
reload_with(q{ALTER SYSTEM SET post_purchase.enabled = on});
ok($node->poll_query_until('shop', 'SELECT count(*) = 0 FROM due WHERE fired_at IS NULL'),
	'enabled again, it fires at once');

reload_with(q{ALTER SYSTEM SET post_purchase.naptime = '100ms'});

# --- pg_terminate_backend: the postmaster starts the worker again

my $t1 = time();
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok( $node->poll_query_until(
		'postgres', qq{
SELECT count(*) = 1 FROM pg_stat_activity
WHERE backend_type = 'post_purchase worker' AND datname = 'shop' AND pid <> $pid}),
	'a terminated worker is started again');
cmp_ok(time() - $t1, '>=', 4, 'by the postmaster, bgw_restart_time (5 s) later');
my $pid2 = worker_pid('shop');
is( $node->safe_psql(
		'postgres', 'SELECT format(\'%s|%s\', pid, steps_fired) FROM post_purchase.worker_status'),
	"$pid2|285",
	'in the same slot, with its statistics');
$node->safe_psql('shop', 'INSERT INTO due DEFAULT VALUES');
ok($node->poll_query_until('shop', 'SELECT count(*) = 0 FROM due WHERE fired_at IS NULL'),
	'and it fires steps');

# --- SIGKILL: the postmaster reinitializes, the launcher and worker come back

$log_offset = -s $node->logfile;
ok(kill('KILL', $pid2), "sent SIGKILL to the worker $pid2");
$node->wait_for_log(qr/\(PID $pid2\) was terminated by signal 9/, $log_offset);
$node->wait_for_log(qr/all server processes terminated; reinitializing/, $log_offset);
$node->wait_for_log(qr/database system is ready to accept connections/, $log_offset);
pass('the postmaster reinitialized after the worker was killed');
ok( $node->poll_query_until(
		'postgres', qq{
SELECT count(*) = 1 FROM pg_stat_activity
WHERE backend_type = 'post_purchase worker' AND datname = 'shop' AND pid <> $pid2}),
	'the worker is back after the crash restart');
sleep(1);
is(workers('shop'), 'post_purchase worker 1 for database shop',
	'one worker: the registration from before the crash did not start a second one');
my $pid3 = worker_pid('shop');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_stat_activity WHERE backend_type = \'post_purchase launcher\''),
	'1', 'with one launcher');
$node->safe_psql('shop', 'INSERT INTO due DEFAULT VALUES');
ok($node->poll_query_until('shop', 'SELECT count(*) = 0 FROM due WHERE fired_at IS NULL'),
	'and it fires steps again');
is($node->safe_psql('postgres', 'SELECT format(\'%s|%s\', database, pid) FROM post_purchase.worker_status'),
	"shop|$pid3", 'worker_status shows the new worker');

# --- pg_terminate_backend of the launcher: its workers go with it, and the
# --- postmaster starts a new launcher, which starts them again

my $launcher = $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'post_purchase launcher'});
$node->safe_psql('postgres', "SELECT pg_terminate_backend($launcher)");
ok( $node->poll_query_until(
		'postgres', qq{
SELECT count(*) = 1 FROM pg_stat_activity
WHERE backend_type = 'post_purchase launcher' AND pid <> $launcher}),
	'a terminated launcher is started again');
ok( $node->poll_query_until(
		'postgres', qq{
SELECT count(*) = 1 FROM pg_stat_activity
WHERE backend_type = 'post_purchase worker' AND datname = 'shop' AND pid <> $pid3}),
	'with a new worker');
sleep(1);
is(workers('shop'), 'post_purchase worker 1 for database shop', 'and only one');
# enable_journey() asks check_workers_serve() whether a worker serves the
# database; here one does, so it does not warn
my ($ret, $stdout, $stderr) = $node->psql('shop', 'SELECT post_purchase.check_workers_serve()');
is("$stdout|$stderr", 't|', 'a database of post_purchase.databases is served: no warning');

# --- reloads: another list of databases, more workers per database

($ret, $stdout, $stderr) = $node->psql('postgres',
	q{ALTER SYSTEM SET post_purchase.databases = '"shop'});
isnt($ret, 0, 'a malformed post_purchase.databases is refused');
like($stderr, qr/invalid value for parameter "post_purchase\.databases"/, 'with the setting named');

$node->safe_psql('postgres', 'CREATE DATABASE shop2');
reload_with(q{ALTER SYSTEM SET post_purchase.databases = 'shop2';
ALTER SYSTEM SET post_purchase.workers_per_database = 2});
ok( $node->poll_query_until(
		'postgres', q{
SELECT string_agg(datname || ':' || application_name, ',' ORDER BY application_name)
FROM pg_stat_activity WHERE backend_type = 'post_purchase worker'},
		'shop2:post_purchase worker 1 for database shop2,shop2:post_purchase worker 2 for database shop2'),
	'after a reload, two workers run in shop2 and none in shop');
($ret, $stdout, $stderr) = $node->psql('shop', 'SELECT post_purchase.check_workers_serve()');
is($stdout, 'f', 'shop is no longer served');
like($stderr,
	qr/WARNING:  no post_purchase background worker serves this database.*HINT:  Set post_purchase\.databases = 'shop2, shop'/s,
	'enable_journey() would warn, with the value to set');
is( $node->safe_psql(
		'postgres', q{SELECT string_agg(database || ':' || worker, ',') FROM post_purchase.worker_status}),
	'shop2:1,shop2:2',
	'worker_status follows');

reload_with(q{ALTER SYSTEM SET post_purchase.databases = 'shop, shop2';
ALTER SYSTEM SET post_purchase.workers_per_database = 1});
ok( $node->poll_query_until(
		'postgres', q{
SELECT string_agg(datname || ':' || application_name, ',' ORDER BY application_name)
FROM pg_stat_activity WHERE backend_type = 'post_purchase worker'},
		'shop:post_purchase worker 1 for database shop,shop2:post_purchase worker 1 for database shop2'),
	'and back to one worker in each of shop and shop2');

# --- DROP DATABASE while the worker runs; it is not restarted

$pid = worker_pid('shop');
$log_offset = -s $node->logfile;
($ret, $stdout, $stderr) = $node->psql('postgres', 'DROP DATABASE shop');
is($ret, 0, 'DROP DATABASE succeeds while the worker is connected');
is($stderr, '', 'without a complaint');
ok($node->log_contains(qr/post_purchase worker 1 for database "shop" stopping on request/, $log_offset),
	'the worker stopped on request');
sleep(2);
is(workers('shop'), '', 'no worker runs for the dropped database');
is( $node->safe_psql(
		'postgres', q{SELECT string_agg(database || ':' || worker, ',') FROM post_purchase.worker_status}),
	'shop2:1',
	'and its slot is gone');
ok(!$node->log_contains(qr/FATAL: .*database .*shop.* does not exist/, $log_offset),
	'no worker tried to connect to it');

$node->safe_psql('postgres', 'CREATE DATABASE shop');
ok( $node->poll_query_until(
		'postgres', q{
SELECT count(*) = 1 FROM pg_stat_activity
WHERE backend_type = 'post_purchase worker' AND datname = 'shop'}),
	'a worker starts when the database exists again');

# a database without workers is dropped and renamed as usual
$node->safe_psql('postgres', 'CREATE DATABASE other; ALTER DATABASE other RENAME TO other2');
$node->safe_psql('postgres', 'DROP DATABASE other2');

# renaming a database with workers: they leave it
$pid = worker_pid('shop');
($ret, $stdout, $stderr) = $node->psql('postgres', 'ALTER DATABASE shop RENAME TO shop_old');
is($ret, 0, 'ALTER DATABASE ... RENAME succeeds while the worker is connected');
sleep(1);
is(workers('shop_old'), '', 'the renamed database has no worker');

# CREATE DATABASE ... TEMPLATE a database with workers: they step aside
# for it, and come back
$pid = worker_pid('shop2');
($ret, $stdout, $stderr) = $node->psql('postgres', 'CREATE DATABASE shop3 TEMPLATE shop2');
is($ret, 0, 'CREATE DATABASE ... TEMPLATE succeeds while the worker is connected');
ok( $node->poll_query_until(
		'postgres', qq{
SELECT count(*) = 1 FROM pg_stat_activity
WHERE backend_type = 'post_purchase worker' AND datname = 'shop2' AND pid <> $pid}),
	'and the worker of the template comes back');

# --- DROP EXTENSION: the worker idles again

$pid = worker_pid('shop2');
$node->safe_psql('shop2', 'CREATE EXTENSION post_purchase');
ok( $node->poll_query_until(
		'postgres', q{
SELECT last_run_at IS NOT NULL FROM post_purchase.worker_status WHERE database = 'shop2'}),
	'the worker of shop2 runs');
$node->safe_psql('shop2', 'DROP EXTENSION post_purchase');
sleep(1);
$last_run = $node->safe_psql('postgres',
	q{SELECT last_run_at FROM post_purchase.worker_status WHERE database = 'shop2'});
sleep(1);
is( $node->safe_psql(
		'postgres', q{SELECT last_run_at FROM post_purchase.worker_status WHERE database = 'shop2'}),
	$last_run,
	'after DROP EXTENSION the worker runs nothing');
is(worker_pid('shop2'), $pid, 'and keeps running');

# --- privileges

$node->safe_psql('postgres', 'CREATE ROLE somebody LOGIN; CREATE ROLE monitor LOGIN IN ROLE pg_monitor');
($ret, $stdout, $stderr) = $node->psql('postgres', 'SELECT post_purchase.wake_workers()',
	extra_params => [ '-U', 'somebody' ]);
like($stderr, qr/permission denied for function wake_workers/, 'wake_workers() is not for everyone');
($ret, $stdout, $stderr) = $node->psql('postgres', 'SELECT * FROM post_purchase.worker_status',
	extra_params => [ '-U', 'somebody' ]);
like($stderr, qr/permission denied for view worker_status/, 'nor is worker_status');
($ret, $stdout, $stderr) = $node->psql('postgres', 'SELECT count(*) FROM post_purchase.worker_status',
	extra_params => [ '-U', 'monitor' ]);
is($stdout, '1', 'pg_monitor reads worker_status');
# the progress view of long calls (src/progress.c) is granted the same way
($ret, $stdout, $stderr) = $node->psql('postgres', 'SELECT * FROM post_purchase.progress',
	extra_params => [ '-U', 'somebody' ]);
like($stderr, qr/permission denied for view progress/, 'nor is the progress view');
($ret, $stdout, $stderr) = $node->psql('postgres', 'SELECT count(*) FROM post_purchase.progress',
	extra_params => [ '-U', 'monitor' ]);
is($stdout, '0', 'pg_monitor reads the progress view');

# --- a standby runs no worker; once promoted, it does

$node->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'backup', has_streaming => 1);
$standby->start;
$node->wait_for_catchup($standby);
sleep(2);
is( $standby->safe_psql(
		'postgres', q{
SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'post_purchase%'}),
	'0',
	'a standby runs no launcher and no worker');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM post_purchase.worker_status'),
	'0', 'and worker_status is empty there');
$node->stop;
$standby->promote;
ok( $standby->poll_query_until(
		'postgres', q{
SELECT count(*) = 1 FROM pg_stat_activity
WHERE backend_type = 'post_purchase worker' AND datname = 'shop2'}),
	'after promotion its workers start');
$standby->stop;

# --- without shared_preload_libraries

my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->start;
$plain->safe_psql('postgres', 'CREATE EXTENSION post_purchase');
is( $plain->safe_psql(
		'postgres', q{
BEGIN;
SELECT post_purchase.wake_workers();
COMMIT;
SELECT count(*) FROM post_purchase.worker_status;
SHOW post_purchase.naptime;}),
	"\n0\n1s",
	'without the preload, wake_workers() does nothing and worker_status is empty');
# progress without the preload: no slot, so the view is empty, and the
# NOTICEs still come, with the rate and the elapsed time in their DETAIL
($ret, $stdout, $stderr) = $plain->psql(
	'postgres', q{
SET post_purchase.progress_notice_interval = 0;
BEGIN;
SELECT post_purchase.progress_start('probe', 10, 'rows');
SELECT pg_sleep(0.05);
SELECT post_purchase.progress_advance(4);
SELECT count(*) FROM post_purchase.progress;
COMMIT;});
is($ret, 0, 'without the preload, a command reports');
like($stdout, qr/^0$/m, 'and the progress view is empty');
like($stderr,
	qr/NOTICE:  probe: 4 of 10 rows \(40\.0%\)\nDETAIL:  \d+\.\d rows per second, \d+\.\d s elapsed\./,
	'its NOTICE has the count, the percent, the rate and the elapsed time');
# a journey enabled there would never fire: enable_journey() warns and enables it
($ret, $stdout, $stderr) = $plain->psql(
	'postgres', q{
SELECT post_purchase.create_journey('probe', 'every_order');
SELECT post_purchase.add_step('probe', 'hello', '0', 'email', 'hello');
SELECT post_purchase.enable_journey('probe');
SELECT enabled FROM post_purchase.journeys WHERE name = 'probe';});
is($ret, 0, 'without the preload, enable_journey() succeeds');
like($stdout, qr/t$/, 'and the journey is enabled');
like($stderr,
	qr/WARNING:  no post_purchase background worker runs on this server.*HINT:  Add post_purchase to shared_preload_libraries/s,
	'with a warning that names shared_preload_libraries');
is( $plain->safe_psql(
		'postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'post_purchase%'}),
	'0', 'and no launcher runs');
$plain->stop;

done_testing();
