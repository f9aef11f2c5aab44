# The workers under a hostile tenant.  A non-superuser marketer, granted
# write access to the segments and journeys (as README says a DBA may),
# owns a segment and a journey whose rule and step condition call its own
# spy function, plants a function and an operator that shadow pg_catalog's
# in a schema the database's search_path puts first, and writes a payload
# template that tries to run a query.  The workers, superuser processes,
# fire the journey and refresh the segments; orders come in from sessions
# with that search_path.  The spy records who ran it: always the tenant,
# never a superuser; the shadowing objects never run; the tenant's attempts
# to reach a superuser's rights (making postgres an owner, rewriting the
# rules and conditions postgres owns, evaluating SQL as postgres) fail with
# 42501; the superuser-only table stays untouched.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('tenant');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'post_purchase'
post_purchase.databases = 'shop'
post_purchase.naptime = '100ms'
post_purchase.segments_refresh_interval = 1
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE shop');

# the test's own queries never use the hostile search_path
sub su_psql { return $node->safe_psql('shop', "SET search_path = pg_catalog, public; $_[0]"); }
sub tenant_psql
{
	my ($sql) = @_;
	return $node->psql('shop', "SET ROLE tenant; $sql", on_error_stop => 1);
}

su_psql(q{
CREATE EXTENSION post_purchase;
CREATE TABLE public.orders (order_id bigserial PRIMARY KEY, customer_id bigint, ordered_at timestamptz NOT NULL DEFAULT now(),
							amount numeric NOT NULL);
SELECT post_purchase.track_orders('public.orders');
INSERT INTO post_purchase.customer_channels (customer_id, channel, address, opted_in, preferred)
SELECT c::text, 'email', 'c' || c || '@example.com', true, true FROM generate_series(1, 5) c;
UPDATE post_purchase.settings SET value = '0' WHERE name = 'frequency_cap_messages';
SELECT post_purchase.enable_journey('thank_you');
CREATE TABLE public.crown_jewels (secret text);
INSERT INTO public.crown_jewels VALUES ('gold');
CREATE ROLE tenant NOSUPERUSER NOCREATEROLE NOCREATEDB;
GRANT USAGE ON SCHEMA post_purchase TO tenant;
GRANT SELECT ON post_purchase.customer_metrics TO tenant;
GRANT SELECT, INSERT, UPDATE ON post_purchase.segments, post_purchase.journeys, post_purchase.journey_steps TO tenant;
CREATE SCHEMA tenant AUTHORIZATION tenant;
});

# The tenant's spy records who runs it and tries to reach further.
my ($ret, $out, $err) = tenant_psql(q{
CREATE TABLE tenant.seen (what text, run_as text, superuser boolean, at timestamptz DEFAULT clock_timestamp());
GRANT INSERT ON tenant.seen TO PUBLIC;
CREATE FUNCTION tenant.spy(what text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO tenant.seen (what, run_as, superuser)
	VALUES (what, current_user, (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user));
	BEGIN
		INSERT INTO public.crown_jewels VALUES ('taken by ' || what);
	EXCEPTION WHEN OTHERS THEN NULL;
	END;
	BEGIN
		EXECUTE 'ALTER ROLE tenant SUPERUSER';
	EXCEPTION WHEN OTHERS THEN NULL;
	END;
	RETURN true;
END
$$;
-- shadows pg_catalog.=(text, text) and now() for whoever puts this schema first
CREATE FUNCTION tenant.text_equal(a text, b text) RETURNS boolean LANGUAGE sql
	AS $$SELECT tenant.spy('shadowing = operator') AND a OPERATOR(pg_catalog.=) b$$;
CREATE OPERATOR tenant.= (LEFTARG = text, RIGHTARG = text, FUNCTION = tenant.text_equal);
CREATE FUNCTION tenant.now() RETURNS timestamptz LANGUAGE sql
	AS $$SELECT CASE WHEN tenant.spy('shadowing now()') THEN pg_catalog.now() END$$;
-- (an exact match of two text arguments beats pg_catalog's VARIADIC "any")
CREATE FUNCTION tenant.jsonb_build_object(a text, b text) RETURNS jsonb LANGUAGE sql
	AS $$SELECT CASE WHEN tenant.spy('shadowing jsonb_build_object()') THEN '{}'::jsonb END$$;

INSERT INTO post_purchase.segments (name, rule)
VALUES ('tenant_segment', 'tenant.spy(''segment rule'') AND (rfm_segment = ''x'' OR orders >= 1)');
INSERT INTO post_purchase.journeys (name, trigger, exit_on_purchase, reentry, holdout_percent, enabled, enabled_at)
VALUES ('tenant_journey', 'every_order', false, 'every_time', 0, true, now());
INSERT INTO post_purchase.journey_steps (journey, step, position, delay, channel, message_type, condition, payload)
VALUES ('tenant_journey', 'hello', 1, '0', 'email', 'hello',
		'tenant.spy(''step condition'') AND (rfm_segment = ''x'' OR true)',
		'{"revenue": "{{customer.revenue}}", "loot": "{{ (SELECT secret FROM public.crown_jewels) }}"}');
});
is($ret, 0, 'the tenant owns a segment and a journey with its own SQL') or diag($err);
is(su_psql(q{SELECT string_agg(owner::text, ',') FROM (SELECT owner FROM post_purchase.segments WHERE name = 'tenant_segment'
			  UNION ALL SELECT owner FROM post_purchase.journeys WHERE name = 'tenant_journey') o}),
	'tenant,tenant', 'both belong to the tenant');

# Every way to a superuser's rights is closed.
my @attempts = (
	[ 'make postgres the owner of its journey' =>
		  q{UPDATE post_purchase.journeys SET owner = 'postgres' WHERE name = 'tenant_journey'} ],
	[ 'create a segment owned by postgres' =>
		  q{INSERT INTO post_purchase.segments (name, rule, owner) VALUES ('borrowed', 'tenant.spy(''borrowed'')', 'postgres')} ],
	[ 'rewrite the rule of a built-in segment (owned by postgres)' =>
		  q{UPDATE post_purchase.segments SET rule = 'tenant.spy(''built-in rule'')' WHERE name = 'lifecycle_new'} ],
	[ 'give a seed journey (owned by postgres) a condition' =>
		  q{UPDATE post_purchase.journey_steps SET condition = 'tenant.spy(''seed condition'')' WHERE journey = 'thank_you'} ],
	[ 'add a step to a journey owned by postgres' =>
		  q{INSERT INTO post_purchase.journey_steps (journey, step, position, delay, channel, message_type, condition)
			VALUES ('thank_you', 'extra', 9, '0', 'email', 'x', 'tenant.spy(''extra step'')')} ],
	[ 'evaluate a condition as postgres' =>
		  q{SELECT post_purchase.evaluate_condition('postgres', 'tenant.spy(''evaluate_condition'')', '1')} ],
	[ 'fire due steps itself' => q{SELECT post_purchase.fire_due_steps(10)} ],);
for my $attempt (@attempts)
{
	my ($what, $sql) = @$attempt;
	my ($r, $o, $e) = tenant_psql($sql);
	like($e, qr/permission denied/, "the tenant cannot $what");
}

# A DBA's mistake: the database's search_path puts the tenant's schema
# before pg_catalog, for every session and for the workers.
su_psql(q{ALTER DATABASE shop SET search_path = tenant, pg_catalog, public});

# Orders from sessions with that search_path; the workers fire.
$node->safe_psql('shop', q{INSERT INTO public.orders (customer_id, amount) SELECT c, 10 * c FROM generate_series(1, 5) c});
$node->safe_psql('shop', q{INSERT INTO public.orders (customer_id, amount) VALUES (3, 99)});
# (a superuser's own query under that search_path would run the tenant's
# operator: this one names pg_catalog's, as a DBA's must then)
$node->poll_query_until('shop', q{
	SELECT count(*) OPERATOR(pg_catalog.=) 12 FROM post_purchase.step_outcomes
	WHERE journey OPERATOR(pg_catalog.=) ANY (ARRAY['tenant_journey', 'thank_you'])})
  or die 'the workers did not fire the six orders\' steps';
# the workers refresh the segments every second (as the rules' owner too)
sleep 2;
su_psql(q{SELECT post_purchase.refresh_segments()});

is(su_psql(q{SELECT string_agg(DISTINCT outcome, ',') FROM post_purchase.step_outcomes WHERE journey = 'tenant_journey'}),
	'fired', "the tenant's steps fired (its condition held as the tenant)");
my $seen = su_psql(q{SELECT string_agg(DISTINCT what || ' as ' || run_as || CASE WHEN superuser THEN ' (superuser)' ELSE '' END,
									   '; ' ORDER BY what || ' as ' || run_as || CASE WHEN superuser THEN ' (superuser)' ELSE '' END)
					 FROM tenant.seen});
is($seen, 'segment rule as tenant; step condition as tenant',
	'the rule and the condition ran, always as the tenant; nothing shadowing ran, nothing as a superuser');
is(su_psql(q{SELECT count(*) FROM tenant.seen WHERE what = 'step condition'}), '6',
	'the condition ran once per fired step');
is(su_psql(q{SELECT string_agg(secret, ',') FROM public.crown_jewels}), 'gold', 'the superuser-only table is untouched');
is(su_psql(q{SELECT rolsuper FROM pg_roles WHERE rolname = 'tenant'}), 'f', 'the tenant is no superuser');
is(su_psql(q{SELECT count(*) FROM post_purchase.segments WHERE name = 'borrowed'}), '0', 'no segment was borrowed');
is(su_psql(q{SELECT rule FROM post_purchase.segments WHERE name = 'lifecycle_new'}), q{lifecycle_stage = 'new'},
	'the built-in rule is unchanged');
is(su_psql(q{SELECT count(*) FROM post_purchase.journey_steps WHERE journey = 'thank_you' AND condition IS NOT NULL}), '0',
	'the seed journey has no condition');
my $payload = su_psql(q{SELECT payload FROM post_purchase.outbox WHERE journey = 'tenant_journey' AND aggregateid = '3' LIMIT 1});
like($payload, qr/"revenue": "?\d/, 'the payload template got the customer\'s revenue');
like($payload, qr/"loot": "\{\{ \(SELECT secret FROM public.crown_jewels\) \}\}"/,
	'a template is data: the query in it is copied, never run');
unlike($payload, qr/gold/, 'no secret in the payload');
is(su_psql(q{SELECT count(*) FROM post_purchase.worker_status WHERE last_error IS NOT NULL}), '0',
	'the workers ran without errors');
is(su_psql(q{SELECT count(*) FROM post_purchase.verify_state()}), '0', 'the customer state is exact');

$node->stop;
done_testing();
