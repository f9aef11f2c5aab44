# Upgrades and dump/restore keep a shop's program exactly.
#
#  * Every released version updates to the current one
#    (pg_extension_update_paths).
#  * A database created at 1.0 and filled (tracked orders, items, models,
#    segments, journeys with enrollments, the outbox with acknowledged and
#    pending messages), then updated with ALTER EXTENSION UPDATE, has the
#    catalog of a fresh install of the current version (every member
#    object's definition, privileges and dump marks) and answers the check
#    queries as a fresh install filled the same way does.
#  * A pg_dump -Fc | pg_restore copy of it, into a database the workers
#    serve, holds every extension table row for row (enrollments keep their
#    progress, modified seed rows come back modified); the workers paused
#    while pg_restore ran, and afterwards fire the steps that were due
#    exactly once.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'post_purchase'
post_purchase.databases = 'restored'
post_purchase.naptime = '200ms'
});
$node->start;

my $current = $node->safe_psql('postgres',
	q{SELECT default_version FROM pg_available_extensions WHERE name = 'post_purchase'});
my $released = $node->safe_psql("postgres",
	qq{SELECT string_agg(version, ',' ORDER BY version) FROM pg_available_extension_versions
	  WHERE name = 'post_purchase' AND version <> '$current'});
ok($released ne '', "released versions to update from: $released (current $current)");
is( $node->safe_psql(
		'postgres', q{CREATE EXTENSION post_purchase;
		SELECT count(*) FROM pg_extension_update_paths('post_purchase') p
		WHERE p.target = (SELECT default_version FROM pg_available_extensions WHERE name = 'post_purchase')
		  AND p.source <> p.target AND p.path IS NULL}),
	'0',
	'every released version has an update path to the current one');
$node->safe_psql('postgres', 'DROP EXTENSION post_purchase');

# The same shop in every database: 60 customers, 240 orders at fixed times,
# items of two products; metrics computed as of a fixed day.
my $shop = q{
CREATE TABLE public.orders (order_id bigint PRIMARY KEY, customer_id bigint, ordered_at timestamptz NOT NULL,
							amount numeric NOT NULL);
CREATE TABLE public.items (order_id bigint NOT NULL, product_id text NOT NULL, quantity integer NOT NULL);
INSERT INTO public.orders
SELECT o, 1 + o % 60, timestamptz '2023-01-01 10:00+00' + (o * 37 % 400) * interval '1 day' + o * interval '1 minute',
	   10 + o % 17 * 3.5
FROM generate_series(1, 240) o;
INSERT INTO public.items SELECT order_id, CASE WHEN order_id % 3 = 0 THEN 'coffee' ELSE 'filters' END, 1 + order_id % 2
FROM public.orders;
};
# One step of filling, as a function of the database and the shop's stage.
my $fill = q{
UPDATE post_purchase.settings SET value = '2024-03-01' WHERE name = 'today';
UPDATE post_purchase.settings SET value = '0' WHERE name = 'frequency_cap_messages';
INSERT INTO post_purchase.products (product_id, days_per_unit) VALUES ('coffee', 20), ('filters', 45);
SELECT post_purchase.track_orders('public.orders');
SELECT post_purchase.track_order_items('public.items', 'order_id', 'product_id', 'quantity');
SELECT post_purchase.refresh_models();
SELECT post_purchase.create_segment('big_spenders', 'revenue > 150');
UPDATE post_purchase.segments SET rule = 'orders >= 6' WHERE name = 'lifecycle_vip';
SELECT post_purchase.refresh_segments();
INSERT INTO post_purchase.customer_channels (customer_id, channel, address, opted_in, preferred)
SELECT c::text, 'email', 'c' || c || '@example.com', c % 7 <> 0, true FROM generate_series(1, 60) c;
SELECT post_purchase.enable_journey('thank_you');
SELECT post_purchase.enable_journey('loyalty_invite');
SELECT post_purchase.create_journey('vip_welcome', 'segment_entered', segment => 'big_spenders');
SELECT post_purchase.add_step('vip_welcome', 'welcome', '0', 'email', 'vip_welcome',
							  payload => '{"name": "{{customer_id}}", "revenue": "{{customer.revenue}}"}');
SELECT post_purchase.enable_journey('vip_welcome');
INSERT INTO public.orders
SELECT 240 + o, 1 + o * 7 % 70, timestamptz '2024-02-20 10:00+00' + o * interval '1 hour', 40 + o FROM generate_series(1, 30) o;
SELECT post_purchase.refresh_segments();
SELECT post_purchase.fire_due_steps(1000);
SELECT count(*) FROM post_purchase.outbox_ack(ARRAY(SELECT id FROM post_purchase.outbox_claim(10, '1 hour')));
};
# What must be equal: answers that depend on the data, not on when or in
# which database they were computed (ids, clock times and uuids differ).
my @checks = (
	[ 'customer_metrics' => q{SELECT customer_id, orders, revenue, recency_days, t_days, round(p_alive::numeric, 9),
			round(clv_12m::numeric, 6), r_score, f_score, m_score, rfm_segment, lifecycle_stage, next_replenishment_due
		FROM post_purchase.customer_metrics} ],
	[ 'verify_state' => q{SELECT * FROM post_purchase.verify_state()} ],
	[ 'settings' => q{SELECT name, value FROM post_purchase.settings} ],
	[ 'segments' => q{SELECT name, rule, builtin, owner FROM post_purchase.segments} ],
	[ 'memberships' => q{SELECT customer_id, segment, exited_at IS NULL FROM post_purchase.segment_memberships} ],
	[ 'journeys' => q{SELECT j.name, j.trigger, j.segment, j.enabled, s.step, s.position, s.delay, s.channel, s.payload
		FROM post_purchase.journeys j LEFT JOIN post_purchase.journey_steps s ON s.journey = j.name} ],
	[ 'enrollments' => q{SELECT journey, customer_id, status, next_position, holdout, variant, end_reason
		FROM post_purchase.enrollments} ],
	[ 'step_outcomes' => q{SELECT journey, step, customer_id, outcome, reason, channel, outbox_id IS NULL
		FROM post_purchase.step_outcomes} ],
	[ 'outbox' => q{SELECT aggregatetype, aggregateid, type, channel, journey, step, payload,
		acknowledged_at IS NULL FROM post_purchase.outbox} ],
	[ 'product_state' => q{SELECT * FROM post_purchase.customer_product_replenishment} ],
	[ 'model' => q{SELECT customers, bgnbd, gamma_gamma, vip_clv_cut
		FROM post_purchase.models WHERE model_id = (SELECT max(model_id) FROM post_purchase.models)} ],);

# Each check's rows as sorted text, one line per row.
sub answers
{
	my ($db) = @_;
	my %answer;
	for my $check (@checks)
	{
		my ($name, $query) = @$check;
		$answer{$name} = $node->safe_psql($db,
			"SELECT coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '(none)') FROM ($query) x");
	}
	return \%answer;
}

# The extension's catalog: every member object with its definition,
# privileges and comment, and the tables pg_dump keeps; the same text
# whatever the object ids.
my $catalog_sql = q{
WITH ext AS (SELECT oid, extconfig, extcondition FROM pg_extension WHERE extname = 'post_purchase'),
member AS (SELECT d.classid, d.objid FROM pg_depend d, ext WHERE d.refobjid = ext.oid AND d.deptype = 'e'),
described AS (
	SELECT pg_describe_object(m.classid, m.objid, 0) AS object,
		   CASE m.classid
			WHEN 'pg_proc'::regclass THEN
				(SELECT pg_get_functiondef(p.oid) || coalesce(p.proacl::text, '') FROM pg_proc p
				 WHERE p.oid = m.objid AND p.prokind <> 'a')
			WHEN 'pg_class'::regclass THEN
				(SELECT c.relkind::text || coalesce(c.relacl::text, '') || coalesce(c.reloptions::text, '') || coalesce(obj_description(c.oid, 'pg_class'), '')
						|| coalesce(pg_get_viewdef(c.oid), '')
						|| coalesce((SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
													   || a.attnotnull::text || a.attidentity::text || a.attgenerated::text
													   || coalesce(pg_get_expr(ad.adbin, ad.adrelid), ''), ', ' ORDER BY a.attnum)
									 FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
									 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
						|| coalesce((SELECT string_agg(pg_get_indexdef(i.indexrelid), '; ' ORDER BY pg_get_indexdef(i.indexrelid))
									 FROM pg_index i WHERE i.indrelid = c.oid), '')
						|| coalesce((SELECT string_agg(x.conname || ' ' || pg_get_constraintdef(x.oid), '; ' ORDER BY x.conname)
									 FROM pg_constraint x WHERE x.conrelid = c.oid), '')
						|| coalesce((SELECT string_agg(pg_get_triggerdef(t.oid), '; ' ORDER BY t.tgname)
									 FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal), '')
				 FROM pg_class c WHERE c.oid = m.objid)
			WHEN 'pg_type'::regclass THEN
				(SELECT format_type(t.oid, NULL) || t.typtype::text || coalesce(t.typacl::text, '') FROM pg_type t WHERE t.oid = m.objid)
			ELSE '' END AS definition
	FROM member m)
SELECT string_agg(object || ': ' || coalesce(definition, ''), E'\n' ORDER BY object)
	   || E'\nconfig dump: ' || (SELECT string_agg(c::regclass::text || ' ' || coalesce(w, ''), ', ' ORDER BY c::regclass::text)
								FROM ext, unnest(ext.extconfig, ext.extcondition) u(c, w))
	   || E'\naggregates: ' || (SELECT string_agg(a.aggfnoid::regprocedure::text || ' ' || a.aggtransfn::text || a.aggfinalfn::text
												  || a.aggcombinefn::text || a.aggserialfn::text || a.aggdeserialfn::text, ', ' ORDER BY a.aggfnoid::regprocedure::text)
								FROM pg_aggregate a JOIN member m ON m.objid = a.aggfnoid)
FROM described};

# A fresh install of the current version, filled.
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', "CREATE EXTENSION post_purchase; $shop $fill");

# The oldest released version, filled, then updated.
my ($oldest) = split /,/, $released;
$node->safe_psql('postgres', 'CREATE DATABASE upgraded');
$node->safe_psql('upgraded', "CREATE EXTENSION post_purchase VERSION '$oldest'; $shop $fill");
# The shop's own view over the aggregates: 1.1 gives them new state types
# (issue 22) by CREATE OR REPLACE AGGREGATE, which keeps them, and the view
# with them (DROP AGGREGATE would refuse to drop them under it).
my $shop_view = q{SELECT * FROM public.customer_seven};
$node->safe_psql('upgraded', q{
CREATE VIEW public.customer_seven AS
SELECT post_purchase.nps((order_id % 11)::int) AS nps, post_purchase.nps_summary((order_id % 11)::int) AS summary,
	   post_purchase.rfm_summary(ordered_at, amount, '2024-06-01') AS rfm,
	   post_purchase.purchase_cycle(ordered_at) AS cycle
FROM public.orders WHERE customer_id = 7});
my $view_before = $node->safe_psql('upgraded', $shop_view);
$node->safe_psql('upgraded', 'ALTER EXTENSION post_purchase UPDATE');
is($node->safe_psql('upgraded', q{SELECT extversion FROM pg_extension WHERE extname = 'post_purchase'}),
	$current, "ALTER EXTENSION UPDATE took the database from $oldest to $current");
is($node->safe_psql('upgraded', $shop_view), $view_before,
	"the shop's view over the aggregates survives the update and answers as before");
is( $node->safe_psql(
		'upgraded', q{SELECT count(*) FROM pg_aggregate a JOIN pg_type t ON t.oid = a.aggtranstype
		WHERE a.aggfnoid::regproc::text LIKE 'post_purchase.%' AND t.typtype = 'p'}),
	'0', 'after the update no aggregate has an internal state');

my $fresh_catalog = $node->safe_psql('fresh', $catalog_sql);
my $upgraded_catalog = $node->safe_psql('upgraded', $catalog_sql);
ok(length($fresh_catalog) > 10000, 'the catalog description is not empty');
is($upgraded_catalog, $fresh_catalog, "the updated extension's catalog is a fresh install's");
if ($upgraded_catalog ne $fresh_catalog)
{
	my %fresh = map { $_ => 1 } split /\n/, $fresh_catalog;
	my %upgraded = map { $_ => 1 } split /\n/, $upgraded_catalog;
	diag("only in the fresh install: $_") for grep { !$upgraded{$_} } sort keys %fresh;
	diag("only after the update: $_") for grep { !$fresh{$_} } sort keys %upgraded;
}

my $fresh = answers('fresh');
my $upgraded = answers('upgraded');
like($fresh->{outbox}, qr/thank_you/, 'the fill fired thank-yous into the outbox');
like($fresh->{enrollments}, qr/vip_welcome/, 'the fill enrolled customers who entered a segment');
is($fresh->{verify_state}, '(none)', 'the fresh install keeps state exactly');
is($upgraded->{$_}, $fresh->{$_}, "check $_: the updated database answers as the fresh install")
  for map { $_->[0] } @checks;

# After the update the extension goes on working: more orders, more steps.
my $more = q{
INSERT INTO public.orders SELECT 300 + o, o, timestamptz '2024-02-28 09:00+00' + o * interval '1 minute', 99
FROM generate_series(1, 5) o;
SELECT post_purchase.fire_due_steps(1000);
};
$node->safe_psql($_, $more) for qw(fresh upgraded);
is(answers('upgraded')->{$_}, answers('fresh')->{$_}, "check $_ still equal after more orders")
  for qw(customer_metrics enrollments outbox verify_state);

# Leave steps due in the dump: orders whose thank-yous are not fired yet.
$node->safe_psql('upgraded',
	q{INSERT INTO public.orders SELECT 400 + o, o, timestamptz '2024-02-29 09:00+00', 25 FROM generate_series(1, 4) o});
my $due = $node->safe_psql('upgraded',
	q{SELECT count(*) FROM post_purchase.enrollments WHERE status = 'active' AND next_fire_at <= now()});
ok($due >= 4, "$due steps are due, unfired, when the dump is taken");

# Every extension table, row for row, ids and times included.
my @tables = split /\n/, $node->safe_psql('upgraded', q{
	SELECT c.oid::regclass FROM pg_class c JOIN pg_depend d ON d.objid = c.oid AND d.classid = 'pg_class'::regclass
	WHERE d.deptype = 'e' AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'post_purchase')
	  AND c.relkind = 'r' ORDER BY 1});
sub table_checksums
{
	my ($db) = @_;
	return join "\n", map {
		"$_ " . $node->safe_psql($db,
			"SELECT count(*) || ' ' || md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM $_ t")
	} @tables;
}
my $sequences_sql = q{SELECT string_agg(format('%s %s', sequencename, last_value), ', ' ORDER BY sequencename)
	FROM pg_sequences WHERE schemaname = 'post_purchase'};
my $dumped_tables = table_checksums('upgraded');
my $dumped_sequences = $node->safe_psql('upgraded', $sequences_sql);
like($dumped_tables, qr/post_purchase.outbox [1-9]\d* [0-9a-f]{32}\n/, 'the table checksums are computed');
# 21 + tracked_survey_answers and product_affinity (issue 20)
is(scalar(@tables), 23, 'every table of the extension is compared');

my $dump = $node->basedir . '/upgraded.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('upgraded'), '-f', $dump ], 'pg_dump -Fc of the updated database');

# pg_restore names its sessions pg_restore unless PGAPPNAME (which the test
# framework sets) says otherwise.
sub restore
{
	my ($db, $title) = @_;
	delete local $ENV{PGAPPNAME};
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr($db), $dump ], $title);
}

# A copy no worker serves: exactly what was dumped.
restore('copy', 'pg_restore into a new database');
is(table_checksums('copy'), $dumped_tables, 'every extension table is restored row for row (ids, progress, times)');
is($node->safe_psql('copy', $sequences_sql), $dumped_sequences, 'the sequences are restored');
my $copied = answers('copy');
my $dumped = answers('upgraded');
is($copied->{$_}, $dumped->{$_}, "check $_: the restored copy answers as the dumped database")
  for map { $_->[0] } @checks;

# A copy the workers serve: they start as soon as the extension exists
# there, pause while pg_restore runs, and fire what was due afterwards.
my $log_offset = -s $node->logfile;
restore('restored', 'pg_restore into a database the workers serve');
ok($node->log_contains(qr/post_purchase worker 1 pauses: pg_restore is connected to database "restored"/, $log_offset),
	'the workers paused while pg_restore ran');

# Afterwards the workers fire the due steps once.
$node->poll_query_until('restored',
	q{SELECT count(*) = 0 FROM post_purchase.enrollments WHERE status = 'active' AND next_fire_at <= now()})
  or die 'the workers did not fire the due steps after the restore';
is( $node->safe_psql(
		'restored', q{SELECT count(*) FROM (SELECT enrollment_id, step FROM post_purchase.outbox
										GROUP BY 1, 2 HAVING count(*) > 1) x}),
	'0',
	'each (enrollment, step) is in the outbox once');
is( $node->safe_psql('restored', 'SELECT count(*) FROM post_purchase.outbox')
	  - $node->safe_psql('upgraded', 'SELECT count(*) FROM post_purchase.outbox'),
	$due,
	'the restored copy has the dumped outbox plus exactly the steps that were due');
ok(!$node->log_contains('duplicate key', $log_offset), 'no duplicate key error in the server log');

# The pause itself: while a session named pg_restore is connected, a due
# step waits; when it leaves, the step fires.
my $restore_session = $node->background_psql('restored');
$restore_session->query_safe(q{SET application_name = 'pg_restore'});
$log_offset = -s $node->logfile;
$node->wait_for_log(qr/post_purchase worker 1 pauses: pg_restore is connected to database "restored"/, $log_offset);
$node->safe_psql('restored',
	q{INSERT INTO public.orders VALUES (500, 7, timestamptz '2024-02-29 12:00+00', 30)});
sleep 2;
is($node->safe_psql('restored', q{SELECT customers FROM post_purchase.decision_backlog}),
	'1', 'while pg_restore is connected, the order waits for its decision (and its thank-you with it)');
$restore_session->quit;
$node->poll_query_until('restored',
	q{SELECT count(*) = 1 FROM post_purchase.enrollments
	  WHERE journey = 'thank_you' AND context -> 'order' ->> 'order_id' = '500' AND status <> 'active'})
  or die 'the step did not fire after pg_restore left';
pass('when pg_restore leaves, the workers go on, decide and fire it');
ok($node->log_contains(qr/post_purchase worker 1 goes on/, $log_offset), 'the pause and its end are logged');

# A restoring session's inserts into the membership history enroll no one.
$node->safe_psql('restored', q{
	SET application_name = 'pg_restore';
	INSERT INTO post_purchase.segment_memberships (customer_id, segment) VALUES ('restored-1', 'big_spenders')});
is( $node->safe_psql(
		'restored', q{SELECT count(*) FROM post_purchase.enrollments WHERE customer_id = 'restored-1'}),
	'0',
	'a restored segment entry enrolls no one');

# Outside a restore, an insert of an existing seed key still fails.
my ($ret, $out, $err) = $node->psql('restored',
	q{INSERT INTO post_purchase.settings VALUES ('today', '2020-01-01', 'x')});
like($err, qr/duplicate key value violates unique constraint "settings_pkey"/,
	'outside a restore, inserting an existing setting fails as usual');

$node->stop;
done_testing();
