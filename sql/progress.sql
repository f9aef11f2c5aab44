-- Progress of long calls (src/progress.c): the NOTICEs, the view's own row,
-- the end of a command by finish, commit, error and a caught error, nested
-- commands, the long calls that report, and bad input.  The NOTICEs' rate
-- and elapsed time are in their DETAIL, hidden by VERBOSITY terse: the
-- messages compared here hold no wall-clock number.  The suites run with
-- post_purchase preloaded (the view needs it).
\set SHOW_CONTEXT never
\set VERBOSITY terse
SET TimeZone = 'UTC';
-- every step a NOTICE (make installcheck turns them off for the other tests)
SET post_purchase.progress_notice_interval = 0;

-- A command of our own.  Outside a transaction block each SELECT commits,
-- and the commit ends the command: nothing is left in the view.
SELECT post_purchase.progress_start('left_open');
SELECT count(*) AS left_over FROM post_purchase.progress WHERE pid = pg_backend_pid();

BEGIN;
SELECT post_purchase.progress_start('test_command', 4, 'things');
SELECT post_purchase.progress_phase('first phase');
SELECT post_purchase.progress_advance(3);
-- the view shows this backend's slot while the command runs
SELECT command, phase, done, total, unit, percent, role = session_user AS role_ok,
	   database = current_database() AS database_ok, started_at <= counting_since AS ordered,
	   rate >= 0 OR rate IS NULL AS rate_ok
FROM post_purchase.progress WHERE pid = pg_backend_pid();
SELECT post_purchase.progress_advance();
-- a new count of an unknown total; then a phase without counting
SELECT post_purchase.progress_count(NULL, 'rows');
SELECT post_purchase.progress_advance(5);
SELECT command, phase, done, total, unit, percent FROM post_purchase.progress WHERE pid = pg_backend_pid();
SELECT post_purchase.progress_phase('second phase');
SELECT post_purchase.progress_finish();
SELECT count(*) AS after_finish FROM post_purchase.progress WHERE pid = pg_backend_pid();
COMMIT;

-- progress_advance() switching phases, as a statement's WHERE and HAVING
-- clauses do: each row read counts, then each group written
BEGIN;
SELECT post_purchase.progress_start('counting_rows', 3, 'rows');
SELECT g % 2 AS parity, count(*)
FROM generate_series(1, 3) g
WHERE post_purchase.progress_advance()
GROUP BY 1 HAVING post_purchase.progress_advance(1, 'writing groups', 'groups')
ORDER BY 1;
SELECT phase, done, total, unit FROM post_purchase.progress WHERE pid = pg_backend_pid();
COMMIT;

-- An estimated total that is passed: percent stops at 100.
BEGIN;
SELECT post_purchase.progress_start('estimate_passed', 2, 'rows');
SELECT post_purchase.progress_advance(3);
SELECT done, total, percent FROM post_purchase.progress WHERE pid = pg_backend_pid();
ROLLBACK;

-- Outside a command, a phase, a count, an advance and a finish do nothing.
SELECT post_purchase.progress_phase('nowhere'), post_purchase.progress_count(1, 'rows'),
	   post_purchase.progress_advance(2), post_purchase.progress_finish();

-- Nested commands: the outer one keeps its name and ends last.
BEGIN;
SELECT post_purchase.progress_start('outer_command');
SELECT post_purchase.progress_start('inner_command', 2, 'steps');
SELECT post_purchase.progress_advance(1);
SELECT post_purchase.progress_finish();
SELECT command, done, unit FROM post_purchase.progress WHERE pid = pg_backend_pid();
SELECT post_purchase.progress_finish();
SELECT count(*) AS after_both FROM post_purchase.progress WHERE pid = pg_backend_pid();
COMMIT;

-- An error ends the command with its transaction ...
BEGIN;
SELECT post_purchase.progress_start('fails');
SELECT 1 / 0;
ROLLBACK;
SELECT count(*) AS after_error FROM post_purchase.progress WHERE pid = pg_backend_pid();
-- ... and a caught error the commands started inside the block; an outer
-- command started before the block goes on
BEGIN;
SELECT post_purchase.progress_start('survives');
SAVEPOINT s;
SELECT post_purchase.progress_start('rolled_back', 1, 'steps');
ROLLBACK TO SAVEPOINT s;
SELECT command, unit FROM post_purchase.progress WHERE pid = pg_backend_pid();
SELECT post_purchase.progress_finish();
SELECT count(*) AS after_finish FROM post_purchase.progress WHERE pid = pg_backend_pid();
COMMIT;
-- a command started in a savepoint that was released belongs to the
-- transaction: a later savepoint's rollback leaves it
BEGIN;
SAVEPOINT a;
SELECT post_purchase.progress_start('released');
RELEASE SAVEPOINT a;
SAVEPOINT b;
ROLLBACK TO SAVEPOINT b;
SELECT command FROM post_purchase.progress WHERE pid = pg_backend_pid();
ROLLBACK;
DO $$
BEGIN
	BEGIN
		PERFORM post_purchase.progress_start('caught');
		PERFORM 1 / 0;
	EXCEPTION WHEN division_by_zero THEN
		RAISE NOTICE 'caught; commands left: %',
			(SELECT count(*) FROM post_purchase.progress WHERE pid = pg_backend_pid());
	END;
END
$$;

-- The long calls report.  A shop of 6 customers and a guest order: the
-- backfill reads each order with a customer against the planner's estimate
-- (7, the guest order included), then writes each customer's state.
CREATE TABLE progress_orders (order_id int PRIMARY KEY, customer_id bigint, ordered_at timestamptz, amount numeric);
INSERT INTO progress_orders VALUES
	(1, 1, '2024-01-10 10:00+00', 50), (2, 2, '2024-01-05 10:00+00', 70), (3, 2, '2024-01-12 10:00+00', 30),
	(4, 3, '2024-01-02 10:00+00', 20), (5, 3, '2024-01-09 10:00+00', 25), (6, 3, '2024-01-15 10:00+00', 30),
	(7, 4, '2023-12-01 10:00+00', 40), (8, 4, '2023-12-20 10:00+00', 60), (9, 4, '2024-01-03 10:00+00', 10),
	(10, 4, '2024-01-18 10:00+00', 45), (11, 5, '2023-11-15 10:00+00', 15), (12, 6, '2023-11-20 10:00+00', 80),
	(13, 6, '2024-01-01 10:00+00', 90), (14, NULL, '2024-01-16 10:00+00', 10);
-- never vacuumed or analyzed: no estimate
SELECT post_purchase.progress_estimated_rows('progress_orders') AS before_analyze;
ANALYZE progress_orders;
SELECT post_purchase.progress_estimated_rows('progress_orders') AS after_analyze;
UPDATE post_purchase.settings SET value = '2024-01-20' WHERE name = 'today';
SELECT post_purchase.track_orders('progress_orders');
SELECT count(*) AS differences FROM post_purchase.verify_state();
SELECT count(*) AS changes FROM post_purchase.refresh_segments() WHERE entered > 0 OR exited > 0;
SELECT customers, (bgnbd).converged FROM post_purchase.refresh_models();
SELECT count(*) AS after_calls FROM post_purchase.progress WHERE pid = pg_backend_pid();

-- A call that fails leaves nothing in the view: the rule fails for
-- customer 2 (two orders), and create_segment() with it.
SELECT post_purchase.create_segment('failing', '1 / (orders - 2) > 0');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS after_failed_call FROM post_purchase.progress WHERE pid = pg_backend_pid();

SELECT post_purchase.untrack_orders('progress_orders');
DROP TABLE progress_orders;
DELETE FROM post_purchase.segment_memberships;
DELETE FROM post_purchase.rfm_cuts;
DELETE FROM post_purchase.models;
UPDATE post_purchase.settings SET value = '' WHERE name = 'today';

-- A partitioned table's estimate is its partitions'.
CREATE TABLE progress_parted (id int) PARTITION BY RANGE (id);
CREATE TABLE progress_parted_1 PARTITION OF progress_parted FOR VALUES FROM (0) TO (10);
CREATE TABLE progress_parted_2 PARTITION OF progress_parted FOR VALUES FROM (10) TO (20);
INSERT INTO progress_parted SELECT generate_series(0, 14);
ANALYZE progress_parted;
SELECT post_purchase.progress_estimated_rows('progress_parted') AS partitions_rows;
DROP TABLE progress_parted;

-- With NOTICEs off the view still shows the command.
SET post_purchase.progress_notice_interval = -1;
BEGIN;
SELECT post_purchase.progress_start('quiet', 10, 'rows');
SELECT post_purchase.progress_advance(4);
SELECT command, done, percent FROM post_purchase.progress WHERE pid = pg_backend_pid();
SELECT post_purchase.progress_finish();
COMMIT;

-- Bad input
\set VERBOSITY default
SELECT post_purchase.progress_start(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.progress_start('');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.progress_start(repeat('x', 64));
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.progress_start('c', -5, 'rows');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.progress_start('c', 5);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.progress_count(5, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.progress_count(5, '');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.progress_count(5, repeat('u', 32));
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.progress_count(-2, 'rows');
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.progress_phase(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.progress_advance(-1);
\echo :LAST_ERROR_SQLSTATE
SELECT post_purchase.progress_advance(NULL);
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT post_purchase.progress_start('c');
SELECT post_purchase.progress_advance(1, 'a phase', NULL);
ROLLBACK;
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT post_purchase.progress_start('c');
SELECT post_purchase.progress_advance(1, repeat('p', 128), 'rows');
ROLLBACK;
\echo :LAST_ERROR_SQLSTATE
-- a phase set by progress_phase() is cut to 127 bytes, at a character boundary
BEGIN;
SELECT post_purchase.progress_start('c');
SELECT post_purchase.progress_phase(repeat('é', 100));
SELECT octet_length(phase) BETWEEN 120 AND 127 AS cut, starts_with(repeat('é', 100), phase) AS prefix
FROM post_purchase.progress WHERE pid = pg_backend_pid();
ROLLBACK;
BEGIN;
SELECT post_purchase.progress_start('level_' || n) FROM generate_series(1, 17) n;
ROLLBACK;
\echo :LAST_ERROR_SQLSTATE
SET post_purchase.progress_notice_interval = -2;
\echo :LAST_ERROR_SQLSTATE
RESET post_purchase.progress_notice_interval;
