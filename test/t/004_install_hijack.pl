# Install-script hijack (CVE-2022-2625's pattern).  Before CREATE EXTENSION,
# a non-superuser who may create objects in the database and in schema
# public (PostgreSQL 15 no longer grants CREATE on public to PUBLIC, but a
# database created under an older release keeps the grant) plants, in
# public: functions with the names and signatures of everything the install
# script calls (pg_catalog's and the extension's own), aggregates, an
# operator for every pg_catalog operator, types named like the built-in ones
# with casts to them, and views named like the extension's relations.  Each
# records in a marker table and bumps a sequence when it runs (the sequence
# survives a rolled-back CREATE EXTENSION).  In other databases the attacker
# prepares what the script would create: the schema post_purchase, owned by
# the attacker or writable by it, with objects planted in it, and the role
# post_purchase_sender.  A superuser then installs with search_path =
# public, pg_catalog and, where the install succeeds, uses the extension
# with that search_path: the install either fails and leaves nothing, or
# succeeds without running any planted code, before or after.  The install
# scripts use plain CREATE only.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('install_hijack');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'post_purchase'\n");
$node->start;

my ($sharedir) = $node->config_data('--sharedir');
my $extdir = "$sharedir/extension";
my ($default_version) = slurp_file("$extdir/post_purchase.control") =~ /^default_version = '([^']+)'/m;
ok(defined $default_version, "the control file names the default version");

# ---------------------------------------------------------------------------
# The installed scripts use plain CREATE only.

my @scripts = sort glob("$extdir/post_purchase--*.sql");
ok(scalar(grep { m{/post_purchase--\Q$default_version\E\.sql$} } @scripts),
	"the default version's install script is installed");
for my $file (@scripts)
{
	my ($name) = $file =~ m{([^/]+)$};
	my $sql = slurp_file($file);
	my ($from) = $name =~ /^post_purchase--([^-]+)--[^-]+\.sql$/;
	my @bad;

	# CREATE OR REPLACE replaces whatever is there.  An upgrade script may
	# replace a function, aggregate or view the script of the version it starts from
	# created: that one is a member of the extension, and PostgreSQL refuses
	# to replace an object that is not (the fix of CVE-2022-2625).
	while ($sql =~ /\bCREATE\s+OR\s+REPLACE\s+(\w+)\s+([\w.]+)/gi)
	{
		my ($kind, $object) = (uc $1, $2);
		my $created_before =
		  defined $from
		  && ($kind eq 'FUNCTION' || $kind eq 'VIEW' || $kind eq 'AGGREGATE')
		  && -f "$extdir/post_purchase--$from.sql"
		  && slurp_file("$extdir/post_purchase--$from.sql") =~ /\bCREATE\s+$kind\s+\Q$object\E[\s(]/i;
		push @bad, "CREATE OR REPLACE $kind $object" unless $created_before;
	}

	# IF NOT EXISTS on DDL (followed by an object's name; PL/pgSQL's
	# "IF NOT EXISTS (SELECT ...)" is a condition).  The one exception is
	# verify_state()'s scratch table in the caller's own pg_temp, created
	# when it runs, not by the script.
	while ($sql =~ /\bIF\s+NOT\s+EXISTS\s+(?!\()(\S+)/gi)
	{
		push @bad, "IF NOT EXISTS $1" unless $1 eq 'pg_temp.post_purchase_expected_days';
	}

	# DO blocks create nothing but the sender role: roles are cluster-wide
	# and the role may exist from an install in another database (the
	# scenario with a role made by someone else is below).
	while ($sql =~ /\bDO\s+(\$\w*\$)(.*?)\1/gs)
	{
		my $body = $2;
		$body =~ s/'(?:[^']|'')*'//g;	# messages may say "CREATE EXTENSION"
		$body =~ s/--[^\n]*//g;
		while ($body =~ /\bCREATE\s+(\w+(?:\s+\w+)?)/gi)
		{
			push @bad, "CREATE $1 in a DO block" unless $1 =~ /^ROLE\s+post_purchase_sender$/i;
		}
	}
	is(join('; ', @bad), '', "$name: plain CREATE only");
}

# ---------------------------------------------------------------------------
# Helpers.  The test's own queries run with search_path = pg_catalog, so
# the planted objects in public never answer them.

sub su_psql
{
	my ($db, $sql) = @_;
	return $node->safe_psql($db, "SET search_path = pg_catalog; $sql");
}

# What the planted code recorded: marker rows and sequence calls.
sub hijacks
{
	my ($db) = @_;
	return su_psql($db, q{
SELECT pg_catalog.count(*)::text || ' marker rows'
	   || CASE WHEN (SELECT s.is_called FROM public.hijack_seq s) THEN ', sequence called' ELSE '' END
	   || coalesce(': ' || pg_catalog.string_agg(DISTINCT m.what || ' as ' || m.run_by, ', '), '')
FROM public.hijack_marker m});
}

# The names the install script calls: every identifier before a "(" (words
# of comments too; only those that name functions matter).
my $script = slurp_file("$extdir/post_purchase--$default_version.sql");
my %called = map { lc($_) => 1 } $script =~ /\b([A-Za-z_][A-Za-z0-9_]*)\s*\(/g;
my $called_names = join(',', sort keys %called);

# The extension's own functions, with the signatures of those whose types
# are all built-in: taken from an install in a scratch database.
$node->safe_psql('postgres', 'CREATE DATABASE reference');
su_psql('reference', 'CREATE EXTENSION post_purchase');
my @own_functions = split /\n/, su_psql('reference', q{
SELECT pg_catalog.format('%I(%s) RETURNS %s%s', p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid),
						 CASE WHEN p.proretset THEN 'SETOF ' ELSE '' END, p.prorettype::regtype)
FROM pg_catalog.pg_proc p
WHERE p.pronamespace = 'post_purchase'::regnamespace AND p.prokind = 'f'
  AND NOT EXISTS (SELECT FROM pg_catalog.unnest(p.proargtypes::oid[] || p.prorettype) t(oid)
				  JOIN pg_catalog.pg_type y ON y.oid = t.oid
				  WHERE y.typnamespace <> 'pg_catalog'::regnamespace OR t.oid = 'internal'::regtype)
ORDER BY 1});
my @own_relations = split /\n/, su_psql('reference', q{
SELECT c.relname FROM pg_catalog.pg_class c
WHERE c.relnamespace = 'post_purchase'::regnamespace AND c.relkind IN ('r', 'v', 'S') ORDER BY 1});
cmp_ok(scalar(@own_functions), '>', 30, 'the extension\'s functions with built-in types were listed');
$node->safe_psql('postgres', 'DROP DATABASE reference; DROP ROLE post_purchase_sender');

$node->safe_psql('postgres', q{
CREATE ROLE attacker LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB;
CREATE ROLE recruiter LOGIN NOSUPERUSER CREATEROLE NOCREATEDB;
});

# A database as an older release made it: the attacker may create schemas
# in it and objects in public.  The shop's orders table is the superuser's.
sub new_database
{
	my ($db) = @_;
	$node->safe_psql('postgres', "CREATE DATABASE $db; GRANT CREATE ON DATABASE $db TO attacker");
	su_psql($db, q{
GRANT CREATE ON SCHEMA public TO attacker;
CREATE TABLE public.shop_orders (
	order_id pg_catalog.int8 GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	customer_id pg_catalog.text NOT NULL,
	ordered_at pg_catalog.timestamptz NOT NULL,
	amount numeric NOT NULL);
});
	return;
}

# The attacker's SQL, run as the attacker.
sub attacker_psql
{
	my ($db, $sql) = @_;
	return $node->psql($db, "SET search_path = pg_catalog; $sql", extra_params => [ '-U', 'attacker' ]);
}

# Everything the attacker plants in public; returns how many functions,
# aggregates, operators, types and casts, and views it made.
sub plant_public
{
	my ($db) = @_;
	my $own = join(",\n", map { "\t\t\$own\$$_\$own\$" } @own_functions);
	my $relations = join(',', @own_relations);
	my ($ret, $out, $err) = attacker_psql($db, qq{
CREATE TABLE public.hijack_marker (what text, run_by name DEFAULT current_user);
GRANT INSERT ON public.hijack_marker TO PUBLIC;
CREATE SEQUENCE public.hijack_seq;
GRANT USAGE, UPDATE ON SEQUENCE public.hijack_seq TO PUBLIC;
CREATE FUNCTION public.hijacked(what text) RETURNS boolean
	LANGUAGE plpgsql SET search_path = pg_catalog AS \$\$
BEGIN
	PERFORM pg_catalog.nextval('public.hijack_seq');
	INSERT INTO public.hijack_marker (what) VALUES (what);
	RETURN true;
END
\$\$;

CREATE FUNCTION pg_temp.try(statement text) RETURNS integer LANGUAGE plpgsql AS \$\$
BEGIN
	EXECUTE statement;
	RETURN 1;
EXCEPTION WHEN OTHERS THEN
	RETURN 0;
END
\$\$;

CREATE FUNCTION pg_temp.plant(names text[], own text[], relations text[]) RETURNS text LANGUAGE plpgsql AS \$plant\$
DECLARE
	p record;
	o record;
	t text;
	args text;
	functions integer := 0;
	aggregates integer := 0;
	operators integer := 0;
	types integer := 0;
	views integer := 0;
BEGIN
	-- pg_catalog's functions of those names, every overload: record, then
	-- give the real answer
	FOR p IN SELECT f.oid, f.proname, f.pronargs, f.provariadic, f.proretset, f.prorettype
			 FROM pg_catalog.pg_proc f
			 WHERE f.pronamespace = 'pg_catalog'::regnamespace AND f.prokind = 'f' AND f.proname = ANY (names) LOOP
		SELECT pg_catalog.string_agg(CASE WHEN i = p.pronargs AND p.provariadic <> 0 THEN 'VARIADIC ' ELSE '' END
									 || '\$' || i, ', ')
		INTO args FROM pg_catalog.generate_series(1, p.pronargs) i;
		functions := functions + pg_temp.try(format(
			'CREATE FUNCTION public.%I(%s) RETURNS %s LANGUAGE plpgsql AS %L',
			p.proname, pg_catalog.pg_get_function_arguments(p.oid), pg_catalog.pg_get_function_result(p.oid),
			format('BEGIN PERFORM public.hijacked(%L); %s; END', 'function ' || p.oid::regprocedure::text,
				   CASE WHEN p.proretset THEN format('RETURN QUERY SELECT * FROM pg_catalog.%I(%s)', p.proname, args)
						WHEN p.prorettype = 'void'::regtype THEN format('PERFORM pg_catalog.%I(%s)', p.proname, args)
						ELSE format('RETURN pg_catalog.%I(%s)', p.proname, args) END)));
	END LOOP;
	-- count(anything) is pg_catalog.count("any"), which PL/pgSQL cannot take
	functions := functions + pg_temp.try('CREATE FUNCTION public.format(text, VARIADIC text[]) RETURNS text
		LANGUAGE plpgsql AS \$\$BEGIN PERFORM public.hijacked(''function format(text, text[])''); RETURN ''''; END\$\$');
	-- their aggregates, plain ones: record on every row
	FOR p IN SELECT f.oid, f.proname, f.prorettype, pg_catalog.pg_get_function_identity_arguments(f.oid) AS args
			 FROM pg_catalog.pg_proc f JOIN pg_catalog.pg_aggregate a ON a.aggfnoid = f.oid
			 WHERE f.pronamespace = 'pg_catalog'::regnamespace AND a.aggkind = 'n' AND f.proname = ANY (names)
			 UNION ALL SELECT 0::oid, 'count'::name, 'int8'::regtype::oid, 'anyelement'::text LOOP
		IF pg_temp.try(format('CREATE FUNCTION public.%I(%s) RETURNS %s LANGUAGE plpgsql AS %L',
							  'hijack_aggregate_' || p.oid, concat_ws(', ', p.prorettype::regtype::text, nullif(p.args, '')),
							  p.prorettype::regtype,
							  format('BEGIN PERFORM public.hijacked(%L); RETURN \$1; END', 'aggregate ' || p.proname || '(' || p.args || ')'))) = 1 THEN
			aggregates := aggregates + pg_temp.try(format('CREATE AGGREGATE public.%I(%s) (SFUNC = public.%I, STYPE = %s)',
				p.proname, coalesce(nullif(p.args, ''), '*'), 'hijack_aggregate_' || p.oid, p.prorettype::regtype));
		END IF;
	END LOOP;
	-- the extension's own functions, same names and signatures
	FOREACH t IN ARRAY own LOOP
		functions := functions + pg_temp.try(format('CREATE FUNCTION public.%s LANGUAGE plpgsql AS %L', t,
			format('BEGIN PERFORM public.hijacked(%L); RETURN%s; END', 'function ' || t,
				   CASE WHEN t ~ ' RETURNS (SETOF |void\$)' THEN '' ELSE ' NULL' END)));
	END LOOP;
	-- an operator for every operator of pg_catalog, same name and types
	FOR o IN SELECT x.oid, x.oprname, x.oprleft, x.oprright, x.oprresult
			 FROM pg_catalog.pg_operator x WHERE x.oprnamespace = 'pg_catalog'::regnamespace LOOP
		IF pg_temp.try(format('CREATE FUNCTION public.%I(%s) RETURNS %s LANGUAGE plpgsql AS %L',
							  'hijack_operator_' || o.oid,
							  concat_ws(', ', CASE WHEN o.oprleft <> 0 THEN o.oprleft::regtype::text END, o.oprright::regtype),
							  o.oprresult::regtype,
							  format('BEGIN PERFORM public.hijacked(%L); RETURN %s; END',
									 'operator ' || o.oid::regoperator::text,
									 CASE WHEN o.oprleft <> 0 THEN format('\$1 OPERATOR(pg_catalog.%s) \$2', o.oprname)
										  ELSE format('OPERATOR(pg_catalog.%s) \$1', o.oprname) END))) = 1 THEN
			operators := operators + pg_temp.try(format('CREATE OPERATOR public.%s (%sRIGHTARG = %s, FUNCTION = public.%I)',
				o.oprname, CASE WHEN o.oprleft <> 0 THEN format('LEFTARG = %s, ', o.oprleft::regtype) ELSE '' END,
				o.oprright::regtype, 'hijack_operator_' || o.oid));
		END IF;
	END LOOP;
	-- types named like the built-in ones that are no keywords, each with an
	-- implicit cast to it from text and from its namesake; a cast between
	-- built-in types needs their owner (refused: checked below)
	FOREACH t IN ARRAY ARRAY['text', 'date', 'timestamptz', 'timestamp', 'jsonb', 'json', 'float8', 'float4', 'int8',
							 'int4', 'int2', 'bool', 'uuid', 'name', 'oid', 'regclass', 'regrole', 'regtype', 'bytea'] LOOP
		IF pg_temp.try(format('CREATE TYPE public.%I AS (hijacked boolean)', t)) = 1 THEN
			types := types + 1;
			PERFORM pg_temp.try(format('CREATE FUNCTION public.%I(pg_catalog.text) RETURNS public.%I LANGUAGE plpgsql AS %L',
				'hijack_cast_text_' || t, t, format('BEGIN PERFORM public.hijacked(%L); RETURN NULL; END', 'cast text to ' || t)));
			PERFORM pg_temp.try(format('CREATE CAST (pg_catalog.text AS public.%I) WITH FUNCTION public.%I(pg_catalog.text) AS IMPLICIT',
				t, 'hijack_cast_text_' || t));
			IF t <> 'text' THEN
				PERFORM pg_temp.try(format('CREATE FUNCTION public.%I(pg_catalog.%I) RETURNS public.%I LANGUAGE plpgsql AS %L',
					'hijack_cast_' || t, t, t, format('BEGIN PERFORM public.hijacked(%L); RETURN NULL; END', 'cast to ' || t)));
				PERFORM pg_temp.try(format('CREATE CAST (pg_catalog.%I AS public.%I) WITH FUNCTION public.%I(pg_catalog.%I) AS IMPLICIT',
					t, t, 'hijack_cast_' || t, t));
			END IF;
		END IF;
	END LOOP;
	-- the extension's relation names, as views that record when read
	FOREACH t IN ARRAY relations LOOP
		views := views + pg_temp.try(format('CREATE VIEW public.%I AS SELECT public.hijacked(%L) AS hijacked', t, 'view ' || t));
	END LOOP;
	RETURN format('%s functions, %s aggregates, %s operators, %s types, %s views', functions, aggregates, operators, types, views);
END
\$plant\$;
SELECT pg_temp.plant(string_to_array('$called_names', ','), ARRAY[
$own
	]::text[], string_to_array('$relations', ','));
});
	is($ret, 0, "$db: the attacker planted its objects in public") or diag($err);
	return $out;
}

# A cast between two built-in types needs an owner of one of them.
sub hostile_cast_refused
{
	my ($db) = @_;
	my ($ret, $out, $err) = attacker_psql($db, q{
CREATE FUNCTION public.hostile_int(text) RETURNS integer LANGUAGE sql AS 'SELECT 1';
CREATE CAST (text AS integer) WITH FUNCTION public.hostile_int(text) AS IMPLICIT;});
	like($err, qr/must be owner of type text or type integer/, "$db: no one but a superuser can cast text to integer");
	return;
}

# CREATE EXTENSION as the superuser, in a session that puts public first.
sub install
{
	my ($db) = @_;
	my ($ret, $out, $err) = $node->psql($db, q{
\set VERBOSITY verbose
SET search_path = public, pg_catalog;
CREATE EXTENSION post_purchase;});
	return ($ret, $err);
}

# The extension in use, in a session that puts public first: the statements
# name only the extension's objects, so that a planted object can answer
# only the extension's own SQL.
sub exercise
{
	my ($db) = @_;
	my ($ret, $out, $err) = $node->psql($db, q{
SET search_path = public, pg_catalog;
SELECT post_purchase.track_orders('public.shop_orders');
INSERT INTO post_purchase.customer_channels (customer_id, channel, address, opted_in) VALUES ('c1', 'email', 'c1@example.com', true);
SELECT post_purchase.create_segment('big_spenders', 'revenue >= 10 AND orders >= 1');
SELECT post_purchase.create_journey('probe', 'every_order');
SELECT post_purchase.add_step('probe', 'hello', '0', 'email', 'hello', condition => 'orders >= 1 AND revenue > 5',
							  payload => '{"orders": "{{customer.orders}}", "who": "{{customer_id}}"}');
SELECT post_purchase.enable_journey('probe');
INSERT INTO public.shop_orders (customer_id, ordered_at, amount) VALUES ('c1', '2024-03-01 10:00+00', 12.5);
INSERT INTO public.shop_orders (customer_id, ordered_at, amount) VALUES ('c2', '2024-03-02 10:00+00', 3);
SELECT * FROM post_purchase.refresh_segments();
SELECT post_purchase.fire_due_steps();
SELECT * FROM post_purchase.outbox_claim(10);
SELECT * FROM post_purchase.customer_metrics;
SELECT * FROM post_purchase.customer_summaries;
SELECT * FROM post_purchase.journey_stats;
SELECT * FROM post_purchase.customer_product_replenishment;
SELECT * FROM post_purchase.verify_state();
SELECT post_purchase.shop_today(), post_purchase.setting('time_zone'), post_purchase.setting_list('channels'),
	   post_purchase.restoring(), post_purchase.in_segment('c1', 'big_spenders'), post_purchase.stable_bucket('c1', 1),
	   post_purchase.in_holdout('probe', 'c1', 10);
SELECT * FROM post_purchase.segment_members('big_spenders');
SELECT post_purchase.nps(s) FROM (VALUES (10), (3)) v(s);
SELECT post_purchase.enroll_due();
SELECT post_purchase.next_due_at();
});
	is($ret, 0, "$db: the extension works with search_path = public, pg_catalog") or diag($err);
	is( su_psql($db, q{
SELECT o.aggregateid || ' ' || o.payload::text FROM post_purchase.outbox o WHERE o.journey = 'probe'}),
		'c1 {"who": "c1", "orders": 1}',
		"$db: the journey fired for the customer its condition holds for, its payload rendered");
	is( su_psql($db, q{SELECT pg_catalog.string_agg(m.customer_id, ',') FROM post_purchase.segment_memberships m
					   WHERE m.segment = 'big_spenders' AND m.exited_at IS NULL}),
		'c1', "$db: the segment holds the customer its rule holds for");
	is(su_psql($db, q{SELECT pg_catalog.count(*) FROM post_purchase.verify_state()}), '0',
		"$db: the customer state is exact");
	return;
}

# The database's objects in schema post_purchase that are no members of
# the extension, and the extension.
sub leftovers
{
	my ($db) = @_;
	return su_psql($db, q{
SELECT coalesce(pg_catalog.string_agg(pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid), ', '
									  ORDER BY pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid)), 'none')
	   || (SELECT CASE WHEN pg_catalog.count(*) > 0 THEN '; extension installed' ELSE '' END
		   FROM pg_catalog.pg_extension e WHERE e.extname = 'post_purchase')
FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_namespace n ON n.oid = d.refobjid
WHERE d.refclassid = 'pg_catalog.pg_namespace'::regclass AND n.nspname = 'post_purchase'
  AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend x
				  WHERE x.classid = d.classid AND x.objid = d.objid AND x.deptype = 'e')});
}

sub sender_role_exists
{
	return su_psql('postgres', q{SELECT pg_catalog.count(*) FROM pg_catalog.pg_roles WHERE rolname = 'post_purchase_sender'});
}

# ---------------------------------------------------------------------------
# Schema post_purchase prepared by someone else: the install is refused
# before the script does anything, and leaves nothing behind.

my @refused = (
	[ schema_owned => 'the attacker owns an empty schema post_purchase',
	  42501, qr/schema "post_purchase" is owned by role attacker/,
	  q{CREATE SCHEMA post_purchase;}, 'none' ],
	[ schema_operators => 'the attacker owns schema post_purchase, with exact-match operators for the views\' mixed-type arithmetic',
	  42501, qr/schema "post_purchase" is owned by role attacker/,
	  q{
CREATE SCHEMA post_purchase;
CREATE FUNCTION post_purchase.divide(numeric, int8) RETURNS numeric LANGUAGE plpgsql
	AS $$BEGIN PERFORM public.hijacked('post_purchase./(numeric, int8)'); RETURN $1 OPERATOR(pg_catalog./) $2; END$$;
CREATE OPERATOR post_purchase./ (LEFTARG = numeric, RIGHTARG = int8, FUNCTION = post_purchase.divide);
CREATE FUNCTION post_purchase.interval_divide(interval, int8) RETURNS interval LANGUAGE plpgsql
	AS $$BEGIN PERFORM public.hijacked('post_purchase./(interval, int8)'); RETURN $1 OPERATOR(pg_catalog./) $2::float8; END$$;
CREATE OPERATOR post_purchase./ (LEFTARG = interval, RIGHTARG = int8, FUNCTION = post_purchase.interval_divide);},
	  'function post_purchase.divide(numeric,bigint), function post_purchase.interval_divide(interval,bigint), '
		. 'operator post_purchase./(interval,bigint), operator post_purchase./(numeric,bigint)' ],
	[ schema_planted => 'the attacker owns schema post_purchase, with a table, a type and a function the script creates',
	  42501, qr/schema "post_purchase" is owned by role attacker/,
	  q{
CREATE SCHEMA post_purchase;
CREATE TABLE post_purchase.settings (name text PRIMARY KEY, value text, description text);
CREATE TYPE post_purchase.nps_result AS (hijacked boolean);
CREATE FUNCTION post_purchase.setting(setting_name text) RETURNS text LANGUAGE plpgsql
	AS $$BEGIN PERFORM public.hijacked('post_purchase.setting'); RETURN NULL; END$$;},
	  'function post_purchase.setting(text), table post_purchase.settings, type post_purchase.nps_result' ],
	[ schema_writable => 'a superuser made schema post_purchase and let the attacker create in it',
	  42501, qr/may create objects in schema "post_purchase": attacker/,
	  'SUPERUSER: CREATE SCHEMA post_purchase; GRANT CREATE ON SCHEMA post_purchase TO attacker;', 'none' ],
	[ schema_filled => 'a superuser made schema post_purchase, the attacker planted a function in it',
	  55000, qr/schema "post_purchase" already contains function post_purchase\.shop_today\(\)/,
	  q{SUPERUSER: CREATE SCHEMA post_purchase; GRANT CREATE ON SCHEMA post_purchase TO attacker;
ATTACKER: CREATE FUNCTION post_purchase.shop_today() RETURNS date LANGUAGE plpgsql
	AS $$BEGIN PERFORM public.hijacked('post_purchase.shop_today'); RETURN NULL; END$$;
SUPERUSER: REVOKE CREATE ON SCHEMA post_purchase FROM attacker;},
	  'function post_purchase.shop_today()' ],);

for my $case (@refused)
{
	my ($db, $what, $sqlstate, $message, $prepare, $expected_leftovers) = @$case;
	note("$db: $what");
	new_database($db);
	my $planted = plant_public($db);
	# "SUPERUSER:" and "ATTACKER:" prefixes say who runs what
	my @steps = $prepare =~ /^(SUPERUSER|ATTACKER):/m ? ($prepare =~ /(SUPERUSER|ATTACKER):\s*(.*?)(?=^(?:SUPERUSER|ATTACKER):|\z)/gms)
	  : ('ATTACKER', $prepare);
	while (my ($who, $sql) = splice(@steps, 0, 2))
	{
		if ($who eq 'SUPERUSER')
		{
			su_psql($db, $sql);
		}
		else
		{
			my ($ret, $out, $err) = attacker_psql($db, $sql);
			is($ret, 0, "$db: the attacker prepared schema post_purchase") or diag($err);
		}
	}
	my ($ret, $err) = install($db);
	isnt($ret, 0, "$db: CREATE EXTENSION is refused");
	like($err, qr/ERROR:\s+$sqlstate:/, "$db: with SQLSTATE $sqlstate");
	like($err, $message, "$db: the error says why");
	like($err, qr/HINT:/, "$db: and what to do");
	is(hijacks($db), '0 marker rows', "$db: no planted code ran, not even in the rolled-back install");
	is(leftovers($db), $expected_leftovers, "$db: nothing but what was planted is in schema post_purchase, no extension");
	is(sender_role_exists(), '0', "$db: the sender role was not created");
}

# The attacker cannot make the role either.
{
	my ($ret, $out, $err) = attacker_psql('schema_owned', 'CREATE ROLE post_purchase_sender');
	like($err, qr/permission denied to create role/, 'the attacker cannot create the sender role');
}

# ---------------------------------------------------------------------------
# Installs that succeed: nothing planted runs, at install or in use.

# Only public is prepared.
new_database('shadowed');
my $planted = plant_public('shadowed');
like($planted, qr/^(\d+) functions, (\d+) aggregates, (\d+) operators, (\d+) types, (\d+) views$/,
	'the attacker planted objects of every kind');
my ($functions, $aggregates, $operators, $types, $views) = $planted =~ /(\d+)/g;
cmp_ok($functions, '>', 100, "$functions shadowing functions (pg_catalog's and the extension's)");
cmp_ok($aggregates, '>', 20, "$aggregates shadowing aggregates");
cmp_ok($operators, '>', 500, "$operators shadowing operators");
is($types, 19, "$types types named like built-in ones, with casts to them");
is($views, scalar(@own_relations), "$views views named like the extension's relations");
hostile_cast_refused('shadowed');
# the planted objects do run when something resolves to them: the marker works
$node->safe_psql('shadowed', q{SET search_path = public, pg_catalog; SELECT 'a' = 'a', now(), array_agg(1)});
like(hijacks('shadowed'), qr/^[1-9]\d* marker rows, sequence called: aggregate array_agg.*function now\(\).*operator =\(text,text\)/,
	'the planted operators, functions and aggregates record when they run (the check is not vacuous)');
su_psql('shadowed', q{TRUNCATE public.hijack_marker; SELECT pg_catalog.setval('public.hijack_seq', 1, false)});
my ($ret, $err) = install('shadowed');
is($ret, 0, 'shadowed: CREATE EXTENSION succeeds with public first in search_path') or diag($err);
is(hijacks('shadowed'), '0 marker rows', 'shadowed: no planted code ran during CREATE EXTENSION');
exercise('shadowed');
is(hijacks('shadowed'), '0 marker rows', 'shadowed: no planted code ran while the extension was used');

# A superuser made the schema beforehand (as pg_restore does): that is fine.
new_database('schema_prepared');
plant_public('schema_prepared');
su_psql('schema_prepared', 'CREATE SCHEMA post_purchase');
($ret, $err) = install('schema_prepared');
is($ret, 0, 'schema_prepared: CREATE EXTENSION uses an empty schema post_purchase a superuser made') or diag($err);
exercise('schema_prepared');
is(hijacks('schema_prepared'), '0 marker rows', 'schema_prepared: no planted code ran');

# The sender role made beforehand by a role with CREATEROLE, who can log in
# as it.  The script leaves an existing role as it is and grants it the four
# functions.  That gives the recruiter nothing CREATEROLE does not give it
# anyway (in PostgreSQL 15 it may grant itself, and change, any role that
# is no superuser): the role the script made in the databases above, too.
{
	my ($r, $o, $e) = $node->psql('postgres', q{
GRANT post_purchase_sender TO recruiter;
ALTER ROLE post_purchase_sender LOGIN PASSWORD 'known';
REVOKE post_purchase_sender FROM recruiter;
ALTER ROLE post_purchase_sender NOLOGIN PASSWORD NULL;}, extra_params => [ '-U', 'recruiter' ]);
	is($r, 0, 'a CREATEROLE role may take and change the sender role the script made anyway') or diag($e);
}
for my $db (@refused, 'shadowed', 'schema_prepared')
{
	$node->safe_psql('postgres', 'DROP DATABASE ' . (ref $db ? $db->[0] : $db));
}
$node->safe_psql('postgres', 'DROP ROLE post_purchase_sender');
{
	my ($r, $o, $e) = $node->psql('postgres', q{
CREATE ROLE post_purchase_sender LOGIN PASSWORD 'known';
GRANT post_purchase_sender TO recruiter;}, extra_params => [ '-U', 'recruiter' ]);
	is($r, 0, 'the recruiter made the sender role in advance, as a login role it belongs to') or diag($e);
}
new_database('role_made');
plant_public('role_made');
($ret, $err) = install('role_made');
is($ret, 0, 'role_made: CREATE EXTENSION succeeds with the role made in advance') or diag($err);
is( su_psql('role_made', q{
SELECT pg_catalog.string_agg(pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) || ' ' || d.deptype::text, '; '
							 ORDER BY pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid))
FROM pg_catalog.pg_shdepend d
WHERE d.refobjid = 'post_purchase_sender'::regrole
  AND d.dbid = (SELECT x.oid FROM pg_catalog.pg_database x WHERE x.datname = pg_catalog.current_database())}),
	'function post_purchase.outbox_ack(uuid[]) a; function post_purchase.outbox_claim(integer,interval) a; '
	  . 'function post_purchase.outbox_fail(uuid,text) a; '
	  . 'function post_purchase.record_event(uuid,text,timestamp with time zone) a',
	'role_made: the role got EXECUTE on the four sender functions, nothing else');
is( su_psql('postgres', q{
SELECT r.rolsuper || ' ' || r.rolcreaterole || ' ' || r.rolcreatedb || ' ' || r.rolbypassrls || ' ' || r.rolreplication
FROM pg_catalog.pg_roles r WHERE r.rolname = 'post_purchase_sender'}),
	'false false false false false', 'role_made: the role has no attribute beyond LOGIN');
exercise('role_made');
is(hijacks('role_made'), '0 marker rows', 'role_made: no planted code ran');

$node->stop;
done_testing();
