# Random-mutation test of every pure function and aggregate of post_purchase:
# thousands of calls with generated arguments (NULLs, NaN, infinities, the
# limits of int4, int8, float8, numeric, timestamptz and interval, malformed
# model composites, JSON templates), aggregates over empty, small and large
# sets, and aggregate states that no serialize function wrote (random bytes,
# mutated states, crafted fields, other aggregates' states) fed to the
# deserialize, combine, final and serialize functions.  Each call must return
# a sane value or raise an error with a SQLSTATE other than XX000; the
# backend must never crash.  Then the integer and sum overflows, each with
# the SQLSTATE it must raise.
#
# The generator is seeded: a failure prints the seed and the call, and
# PP_MUTATION_SEED=<seed> replays the same calls.  PP_MUTATION_SCALE=<n>
# multiplies the number of random calls.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $seed = $ENV{PP_MUTATION_SEED} // 20240606;
my $scale = $ENV{PP_MUTATION_SCALE} // 1;
note "mutation seed $seed, scale $scale (rerun: PP_MUTATION_SEED=$seed)";

# xorshift32: small, fast and the same on every platform
my $rng = ($seed & 0xffffffff) || 1;

sub rnd32
{
	my $x = $rng;
	$x ^= ($x << 13) & 0xffffffff;
	$x ^= $x >> 17;
	$x ^= ($x << 5) & 0xffffffff;
	$rng = $x;
	return $x;
}
sub below { return rnd32() % $_[0]; }
sub pick { return $_[ below(scalar @_) ]; }
sub chance { return rnd32() / 4294967296.0 < $_[0]; }
sub unit_rand { return rnd32() / 4294967296.0; }
sub g17 { return sprintf('%.17g', $_[0]); }

sub quote_literal
{
	my ($s) = @_;
	$s =~ s/'/''/g;
	return "'$s'";
}

my $node = PostgreSQL::Test::Cluster->new('mutation');
$node->init;
$node->append_conf(
	'postgresql.conf', q{
restart_after_crash = on
autovacuum = off
max_worker_processes = 8
max_parallel_workers = 4
max_parallel_workers_per_gather = 2
});
$node->start;

# ---------------------------------------------------------------------------
# The harness: mut.try() runs one call in a subtransaction and reports "ok",
# "insane <value>" when the value fails its sanity check, or
# "error <SQLSTATE> <message>".  A crafted-state call must be planned as a
# partial aggregation (the crafting aggregate's state only makes sense to
# the deserialize function); mut.try() checks the plan first.
# ---------------------------------------------------------------------------
$node->safe_psql(
	'postgres', q{
CREATE EXTENSION post_purchase;
CREATE SCHEMA mut;

CREATE FUNCTION mut.try(call text, chk text, split boolean, tz text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	v text;
	ok boolean;
	plan text;
BEGIN
	IF tz IS NOT NULL THEN
		PERFORM pg_catalog.set_config('TimeZone', tz, true);
	END IF;
	IF split THEN
		EXECUTE 'EXPLAIN (COSTS OFF) ' || call INTO plan;
		IF plan NOT LIKE 'Finalize %' THEN
			RETURN 'noplan ' || plan;
		END IF;
	END IF;
	EXECUTE format('SELECT s.r::text, (%s) FROM (%s) AS s(r)', chk, call) INTO v, ok;
	IF ok IS NOT TRUE THEN
		RETURN 'insane ' || coalesce(left(v, 300), 'NULL');
	END IF;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN 'error ' || SQLSTATE || ' ' || translate(SQLERRM, E'\n', ' ');
END
$$;

-- sanity of the composite results (a NULL result is always sane)
CREATE FUNCTION mut.sane(r post_purchase.nps_result) RETURNS boolean LANGUAGE sql AS $$
SELECT r IS NULL OR (r.promoters >= 0 AND r.passives >= 0 AND r.detractors >= 0
	AND r.responses::numeric = r.promoters::numeric + r.passives + r.detractors
	AND (r.responses = 0) = (r.nps IS NULL) AND (r.nps IS NULL) = (r.margin_of_error IS NULL)
	AND coalesce(r.nps BETWEEN -100 AND 100, true)
	AND coalesce(r.margin_of_error >= 0 AND r.margin_of_error <= 196, true))$$;
CREATE FUNCTION mut.sane(r post_purchase.rfm_result) RETURNS boolean LANGUAGE sql AS $$
SELECT r IS NULL OR (r.frequency >= 0 AND r.recency >= 0 AND r.recency <= r.t AND r.t < 'Infinity'
	AND r.monetary_value IS NOT NULL AND r.monetary_value <> 'NaN'
	AND (r.frequency > 0 OR (r.recency = 0 AND r.monetary_value = 0)))$$;
CREATE FUNCTION mut.sane(r post_purchase.purchase_cycle_result) RETURNS boolean LANGUAGE sql AS $$
SELECT r IS NULL OR (r.purchases >= 1 AND isfinite(r.last_purchase)
	AND CASE WHEN r.purchases = 1
			 THEN r.median_interval IS NULL AND r.mean_interval IS NULL AND r.next_due IS NULL
			 ELSE r.median_interval >= '1 day' AND r.mean_interval >= '1 day'
				  AND r.next_due > r.last_purchase END)$$;
CREATE FUNCTION mut.sane(m post_purchase.bgnbd_model) RETURNS boolean LANGUAGE sql AS $$
SELECT m IS NULL OR (m.r > 0 AND m.r < 'Infinity' AND m.alpha > 0 AND m.alpha < 'Infinity'
	AND m.a > 0 AND m.a < 'Infinity' AND m.b > 0 AND m.b < 'Infinity'
	AND m.log_likelihood <> 'NaN' AND m.customers > 0 AND m.customers < 'Infinity'
	AND m.converged IS NOT NULL)$$;
CREATE FUNCTION mut.sane(m post_purchase.gamma_gamma_model) RETURNS boolean LANGUAGE sql AS $$
SELECT m IS NULL OR (m.p > 0 AND m.p < 'Infinity' AND m.q > 0 AND m.q < 'Infinity'
	AND m.v > 0 AND m.v < 'Infinity' AND m.log_likelihood <> 'NaN'
	AND m.customers > 0 AND m.customers < 'Infinity' AND m.converged IS NOT NULL)$$;

-- The aggregates of 1.0 have "internal" states; 1.1's have types of their
-- own (issue 22), but the module keeps 1.0's functions for databases still
-- at 1.0.  They are declared here, as 1.0 declares them, to feed them
-- states as bytes, as before.
CREATE FUNCTION mut.nps_accum(internal, integer) RETURNS internal AS '$libdir/post_purchase', 'nps_accum' LANGUAGE C;
CREATE FUNCTION mut.nps_combine(internal, internal) RETURNS internal AS '$libdir/post_purchase', 'nps_combine' LANGUAGE C;
CREATE FUNCTION mut.nps_serialize(internal) RETURNS bytea AS '$libdir/post_purchase', 'nps_serialize' LANGUAGE C STRICT;
CREATE FUNCTION mut.nps_deserialize(bytea, internal) RETURNS internal AS '$libdir/post_purchase', 'nps_deserialize' LANGUAGE C STRICT;
CREATE FUNCTION mut.nps_final(internal) RETURNS numeric AS '$libdir/post_purchase', 'nps_final' LANGUAGE C;
CREATE FUNCTION mut.nps_summary_final(internal) RETURNS post_purchase.nps_result AS '$libdir/post_purchase', 'nps_summary_final' LANGUAGE C;
CREATE FUNCTION mut.rfm_summary_accum(internal, timestamptz, numeric, timestamptz, interval) RETURNS internal AS '$libdir/post_purchase', 'rfm_summary_accum' LANGUAGE C;
CREATE FUNCTION mut.rfm_summary_combine(internal, internal) RETURNS internal AS '$libdir/post_purchase', 'rfm_summary_combine' LANGUAGE C;
CREATE FUNCTION mut.rfm_summary_serialize(internal) RETURNS bytea AS '$libdir/post_purchase', 'rfm_summary_serialize' LANGUAGE C STRICT;
CREATE FUNCTION mut.rfm_summary_deserialize(bytea, internal) RETURNS internal AS '$libdir/post_purchase', 'rfm_summary_deserialize' LANGUAGE C STRICT;
CREATE FUNCTION mut.rfm_summary_final(internal) RETURNS post_purchase.rfm_result AS '$libdir/post_purchase', 'rfm_summary_final' LANGUAGE C;
CREATE FUNCTION mut.purchase_cycle_accum(internal, timestamptz) RETURNS internal AS '$libdir/post_purchase', 'purchase_cycle_accum' LANGUAGE C;
CREATE FUNCTION mut.purchase_cycle_combine(internal, internal) RETURNS internal AS '$libdir/post_purchase', 'purchase_cycle_combine' LANGUAGE C;
CREATE FUNCTION mut.purchase_cycle_serialize(internal) RETURNS bytea AS '$libdir/post_purchase', 'purchase_cycle_serialize' LANGUAGE C STRICT;
CREATE FUNCTION mut.purchase_cycle_deserialize(bytea, internal) RETURNS internal AS '$libdir/post_purchase', 'purchase_cycle_deserialize' LANGUAGE C STRICT;
CREATE FUNCTION mut.purchase_cycle_final(internal) RETURNS post_purchase.purchase_cycle_result AS '$libdir/post_purchase', 'purchase_cycle_final' LANGUAGE C;
CREATE FUNCTION mut.bgnbd_fit_accum(internal, float8, float8, float8, float8) RETURNS internal AS '$libdir/post_purchase', 'bgnbd_fit_accum' LANGUAGE C;
CREATE FUNCTION mut.bgnbd_fit_final(internal) RETURNS post_purchase.bgnbd_model AS '$libdir/post_purchase', 'bgnbd_fit_final' LANGUAGE C;
CREATE FUNCTION mut.gamma_gamma_fit_accum(internal, float8, float8, float8) RETURNS internal AS '$libdir/post_purchase', 'gamma_gamma_fit_accum' LANGUAGE C;
CREATE FUNCTION mut.gamma_gamma_fit_final(internal) RETURNS post_purchase.gamma_gamma_model AS '$libdir/post_purchase', 'gamma_gamma_fit_final' LANGUAGE C;
CREATE FUNCTION mut.model_fit_combine(internal, internal) RETURNS internal AS '$libdir/post_purchase', 'model_fit_combine' LANGUAGE C;
CREATE FUNCTION mut.model_fit_serialize(internal) RETURNS bytea AS '$libdir/post_purchase', 'model_fit_serialize' LANGUAGE C STRICT;
CREATE FUNCTION mut.model_fit_deserialize(bytea, internal) RETURNS internal AS '$libdir/post_purchase', 'model_fit_deserialize' LANGUAGE C STRICT;
CREATE FUNCTION mut.csat_accum(internal, integer, integer) RETURNS internal AS '$libdir/post_purchase', 'csat_accum' LANGUAGE C;
CREATE FUNCTION mut.csat_combine(internal, internal) RETURNS internal AS '$libdir/post_purchase', 'csat_combine' LANGUAGE C;
CREATE FUNCTION mut.ces_combine(internal, internal) RETURNS internal AS '$libdir/post_purchase', 'ces_combine' LANGUAGE C;
CREATE FUNCTION mut.survey_serialize(internal) RETURNS bytea AS '$libdir/post_purchase', 'survey_serialize' LANGUAGE C STRICT;
CREATE FUNCTION mut.survey_deserialize(bytea, internal) RETURNS internal AS '$libdir/post_purchase', 'survey_deserialize' LANGUAGE C STRICT;
CREATE FUNCTION mut.csat_final(internal) RETURNS numeric AS '$libdir/post_purchase', 'csat_final' LANGUAGE C;
CREATE FUNCTION mut.csat_summary_final(internal) RETURNS post_purchase.csat_result AS '$libdir/post_purchase', 'csat_summary_final' LANGUAGE C;
CREATE FUNCTION mut.ces_summary_final(internal) RETURNS post_purchase.ces_result AS '$libdir/post_purchase', 'ces_summary_final' LANGUAGE C;

-- Aggregate states as bytes: an aggregate's own transition function, then
-- its serialize function as the final function.
CREATE AGGREGATE mut.nps_state(integer) (SFUNC = mut.nps_accum, STYPE = internal,
	FINALFUNC = mut.nps_serialize);
CREATE AGGREGATE mut.rfm_state(timestamptz, numeric, timestamptz, interval) (
	SFUNC = mut.rfm_summary_accum, STYPE = internal,
	FINALFUNC = mut.rfm_summary_serialize);
CREATE AGGREGATE mut.cycle_state(timestamptz) (SFUNC = mut.purchase_cycle_accum,
	STYPE = internal, FINALFUNC = mut.purchase_cycle_serialize);
CREATE AGGREGATE mut.bgnbd_state(float8, float8, float8, float8) (
	SFUNC = mut.bgnbd_fit_accum, STYPE = internal,
	FINALFUNC = mut.model_fit_serialize);
CREATE AGGREGATE mut.gg_state(float8, float8, float8) (
	SFUNC = mut.gamma_gamma_fit_accum, STYPE = internal,
	FINALFUNC = mut.model_fit_serialize);
CREATE FUNCTION mut.state_or_null(call text) RETURNS bytea LANGUAGE plpgsql AS $$
DECLARE
	b bytea;
BEGIN
	EXECUTE call INTO b;
	RETURN b;
EXCEPTION WHEN OTHERS THEN
	RETURN NULL;
END
$$;

-- Bytes as a state: the partial phase of these aggregates concatenates the
-- bytes of its group (bytea string_agg with a NULL delimiter) and
-- "serializes" them as they are, so the finalize phase hands exactly those
-- bytes to the extension's deserialize function, then combines the states
-- of the two partitions and runs the final function.  The aggregates are
-- only safe in a partial plan, which mut.try() checks.
CREATE TABLE mut.blobs (id integer, part integer, k integer, b bytea) PARTITION BY LIST (part);
CREATE TABLE mut.blobs_1 PARTITION OF mut.blobs FOR VALUES IN (1);
CREATE TABLE mut.blobs_2 PARTITION OF mut.blobs FOR VALUES IN (2);
INSERT INTO mut.blobs SELECT 0, p, 1, NULL FROM generate_series(1, 2) p, generate_series(1, 2000);
});

# the crafting aggregates: name => [deserialize, combine, final, result check]
my %craft = (
	nps_final => [ 'nps', 'nps', 'nps_final', q{r IS NULL OR r BETWEEN -100 AND 100} ],
	nps_summary => [ 'nps', 'nps', 'nps_summary_final', q{mut.sane(r)} ],
	nps_serial => [ 'nps', 'nps', 'nps_serialize', 'true' ],
	rfm_final => [ 'rfm_summary', 'rfm_summary', 'rfm_summary_final', q{mut.sane(r)} ],
	rfm_serial => [ 'rfm_summary', 'rfm_summary', 'rfm_summary_serialize', 'true' ],
	cycle_final => [ 'purchase_cycle', 'purchase_cycle', 'purchase_cycle_final', q{mut.sane(r)} ],
	cycle_serial => [ 'purchase_cycle', 'purchase_cycle', 'purchase_cycle_serialize', 'true' ],
	bgnbd_final => [ 'model_fit', 'model_fit', 'bgnbd_fit_final', q{mut.sane(r)} ],
	gg_final => [ 'model_fit', 'model_fit', 'gamma_gamma_fit_final', q{mut.sane(r)} ],
	fit_serial => [ 'model_fit', 'model_fit', 'model_fit_serialize', 'true' ],);

# The survey metrics (src/survey.c): their results' sanity, their states as
# bytes, and their crafting aggregates.  The intervals may miss the point
# estimate by a rounding error: 1e-9.
$node->safe_psql(
	'postgres', q{
CREATE FUNCTION mut.sane(r post_purchase.csat_result) RETURNS boolean LANGUAGE sql AS $$
SELECT r IS NULL OR (r.responses >= 0 AND r.satisfied BETWEEN 0 AND r.responses
	AND (r.responses = 0) = (r.csat IS NULL) AND (r.csat IS NULL) = (r.mean IS NULL)
	AND (r.csat IS NULL) = (r.ci_low IS NULL) AND (r.ci_low IS NULL) = (r.ci_high IS NULL)
	AND coalesce(r.csat BETWEEN 0 AND 100 AND r.mean BETWEEN 1 AND 10
		AND r.ci_low >= 0 AND r.ci_low <= r.csat + 1e-9 AND r.ci_high >= r.csat - 1e-9 AND r.ci_high <= 100, true))$$;
CREATE FUNCTION mut.sane(r post_purchase.ces_result) RETURNS boolean LANGUAGE sql AS $$
SELECT r IS NULL OR (r.responses >= 0 AND r.low_effort BETWEEN 0 AND r.responses
	AND (r.responses = 0) = (r.mean IS NULL) AND (r.mean IS NULL) = (r.low_effort_percent IS NULL)
	AND (r.responses <= 1) = (r.ci_low IS NULL) AND (r.ci_low IS NULL) = (r.ci_high IS NULL)
	AND coalesce(r.low_effort_percent BETWEEN 0 AND 100 AND r.mean BETWEEN 1 AND 10, true)
	AND coalesce(r.ci_low <= r.mean + 1e-9 AND r.ci_high >= r.mean - 1e-9
		AND r.ci_low > -1e6 AND r.ci_high < 1e6, true))$$;
CREATE AGGREGATE mut.survey_state(integer, integer) (SFUNC = mut.csat_accum, STYPE = internal,
	FINALFUNC = mut.survey_serialize);
});
$craft{csat_final} = [ 'survey', 'csat', 'csat_final', q{r IS NULL OR r BETWEEN 0 AND 100} ];
$craft{csat_summary} = [ 'survey', 'csat', 'csat_summary_final', q{mut.sane(r)} ];
$craft{ces_summary} = [ 'survey', 'ces', 'ces_summary_final', q{mut.sane(r)} ];
$craft{survey_serial} = [ 'survey', 'csat', 'survey_serialize', 'true' ];
{
	my $sql = '';
	for my $name (sort keys %craft)
	{
		my ($fmt, $combine, $final) = @{ $craft{$name} };
		$sql .= qq{
CREATE AGGREGATE mut.craft_$name(bytea, bytea) (
	SFUNC = pg_catalog.bytea_string_agg_transfn, STYPE = internal,
	SERIALFUNC = pg_catalog.bytea_string_agg_finalfn,
	DESERIALFUNC = mut.${fmt}_deserialize,
	COMBINEFUNC = mut.${combine}_combine,
	FINALFUNC = mut.$final, PARALLEL = SAFE);};
	}
	$node->safe_psql('postgres', $sql);
}

# ---------------------------------------------------------------------------
# Which functions there are.  Every function of the schema is either fed
# here or named as stateful (it writes tables, is a trigger, or runs SQL it
# is given; other tests cover those).  A new function fails this test until
# it is put on one list or the other.
# ---------------------------------------------------------------------------
my %pure = map { $_ => 1 } qw(
  nps nps_summary nps_accum nps_combine nps_serialize nps_deserialize nps_final nps_summary_final
  rfm_summary rfm_summary_accum rfm_summary_combine rfm_summary_serialize rfm_summary_deserialize
  rfm_summary_final
  purchase_cycle purchase_cycle_accum purchase_cycle_combine purchase_cycle_serialize
  purchase_cycle_deserialize purchase_cycle_final replenishment_due
  rfm_segment rfm_score
  bgnbd_fit bgnbd_fit_accum bgnbd_fit_final gamma_gamma_fit gamma_gamma_fit_accum
  gamma_gamma_fit_final model_fit_combine model_fit_serialize model_fit_deserialize
  bgnbd_p_alive bgnbd_expected_purchases bgnbd_probability_of_purchases
  gamma_gamma_expected_value clv bgnbd_simulate predicted_clv_12m today_in_zone metrics_of
  monetary_value customer_age_days recency_score lifecycle_stage next_replenishment_due
  render_payload render_message stable_bucket in_holdout pick_variant check_variants
  setting setting_list shop_today quiet_hours_end uuid_v7
  csat csat_summary ces_summary csat_accum ces_accum csat_combine ces_combine survey_serialize
  survey_deserialize csat_final csat_summary_final ces_summary_final
  nps_state_in nps_state_out nps_state_recv nps_state_send nps_state_accum nps_state_combine
  nps_state_final nps_summary_state_final
  survey_state_in survey_state_out survey_state_recv survey_state_send csat_state_accum
  ces_state_accum csat_state_combine ces_state_combine csat_state_final csat_summary_state_final
  ces_summary_state_final
  rfm_summary_state_in rfm_summary_state_out rfm_summary_state_recv rfm_summary_state_send
  rfm_summary_state_accum rfm_summary_state_combine rfm_summary_state_final
  purchase_totals purchase_totals_accum purchase_totals_final
  purchase_cycle_state_in purchase_cycle_state_out purchase_cycle_state_recv
  purchase_cycle_state_send purchase_cycle_state_accum purchase_cycle_state_combine
  purchase_cycle_state_final
  model_fit_state_in model_fit_state_out model_fit_state_recv model_fit_state_send
  model_fit_state_combine bgnbd_fit_state_accum bgnbd_fit_state_final gamma_gamma_fit_state_accum
  gamma_gamma_fit_state_final);
my %stateful = map { $_ => 1 } qw(
  track_orders_trigger track_orders_truncate recomputed_state_query recomputed_state
  customer_index ensure_customer_index track_orders tracked_column_type untrack_orders
  verify_state refresh_models refresh_rfm_cuts check_owner parse_segment_rule
  check_segment_rule create_segment set_segment_rule drop_segment in_segment segment_members
  refresh_segments refresh_customer_segments segment_rule_members segments_changed
  track_items_trigger track_items_truncate recomputed_product_orders rebuild_order_items
  attach_orders_trigger track_order_items untrack_order_items refresh_product_cycles
  worker_status wake_workers restoring outbox_notify outbox_claim outbox_ack outbox_fail
  outbox_retry outbox_purge record_event create_journey add_step set_journey_enabled
  enable_journey disable_journey drop_journey enroll enroll_segment_changes
  enroll_due evaluate_condition evaluate_step_conditions fire_due_steps next_due_at
  restore_replaces_row delete_step_outcomes metrics_context_changed journeys_follow_segments
  prepare_segment_metrics refresh_segment check_workers_serve process_changes
  store_scores store_all_scores next_metrics_context_version
  progress progress_start progress_phase progress_count progress_advance progress_finish
  progress_estimated_rows check_not_distributed tracked_rows_keyword
  track_answers_trigger track_answers_truncate forget_survey_answers refresh_survey_answers
  track_survey_answers untrack_survey_answers
  affinity_setting affinity_parameters affinity_pairs refresh_product_affinity recommend_products recommendations_json);
{
	my @unlisted = grep { !$pure{$_} && !$stateful{$_} } split /\n/,
	  $node->safe_psql(
		'postgres', q{
SELECT DISTINCT proname FROM pg_proc
WHERE pronamespace = 'post_purchase'::regnamespace ORDER BY 1});
	is(join(', ', @unlisted), '',
		'every function of the extension is fed by this test or listed as stateful');
}

# ---------------------------------------------------------------------------
# Generators of SQL literals
# ---------------------------------------------------------------------------
my $INF = 9**9**9;
my $NAN = $INF - $INF;

my @float_special = (
	'NULL', q{'NaN'}, q{'Infinity'}, q{'-Infinity'}, '0', q{'-0'}, '1', '-1', '0.5', '2',
	'1.7976931348623157e308', '-1.7976931348623157e308', '5e-324', '-5e-324',
	'2.2250738585072014e-308', '1e-300', '1e300', '1e15', '9007199254740993', '-1e-15',
	'4503599627370496.5', '2147483648', '-2147483649');
my @int_special = ('NULL', '0', '1', '-1', '2147483647', '-2147483648', '2147483646');
my @int8_special = (
	'NULL', '0', '1', '-1', '9223372036854775807', '-9223372036854775808',
	'9223372036854775806', '4294967296');
my @numeric_special = (
	'NULL', q{'NaN'}, q{'Infinity'}, q{'-Infinity'}, '0', q{'-0'}, '1', '-1', '0.00000001',
	'0.000000001', '1e-20', '123.45678901', '-99.99', '99999999999999999999.99999999',
	'1e27', '-1e27', '1e28', '1e1000', '-1e1000', q{'1e131071'}, q{'-1e131071'},
	q{'1e-16383'}, '1e-1000', '0.1234567890123456789', '9223372036854775807');
my @ts_special = (
	'NULL', q{'infinity'}, q{'-infinity'}, q{'4714-11-24 00:00:00+00 BC'},
	q{'294276-12-31 23:59:59.999999+00'}, q{'294276-12-31 00:00:00+00'},
	q{'4714-11-25 00:00:00+00 BC'}, q{'1970-01-01 00:00:00+00'},
	q{'2000-01-01 00:00:00+00'}, q{'1999-12-31 23:59:59.999999+00'},
	q{'2000-01-01 00:00:00.000001+00'}, q{'0001-01-01 00:00:00+00 BC'});
my @interval_special = (
	'NULL', q{'0'}, q{'1 day'}, q{'7 days'}, q{'-1 day'}, q{'1 microsecond'},
	q{'-1 microsecond'}, q{'1 month'}, q{'178000000 years'}, q{'-178000000 years'},
	q{'2147483647 days'}, q{'-2147483648 days'}, q{'2147483647 months'},
	q{'1 month -30 days'}, q{'1 month -30 days 1 microsecond'},
	q{'2562047788 hours'}, q{'-2562047788 hours'}, q{'12 hours'});
my @zones = (
	'UTC', 'America/New_York', 'Asia/Kathmandu', 'Pacific/Kiritimati',
	'Pacific/Pago_Pago', 'Europe/Lisbon', 'Etc/GMT+12', 'Australia/Lord_Howe');

sub float_lit
{
	return pick(@float_special) if chance(0.35);
	my $v = unit_rand() * 10**(below(25) - 12);
	$v = -$v if chance(0.15);
	return g17($v);
}
# mostly a plausible positive model parameter
sub param_lit
{
	return float_lit() if chance(0.15);
	return g17(exp(unit_rand() * 10 - 5));
}
sub int_lit { return chance(0.3) ? pick(@int_special) : below(30) - 3; }
sub int8_lit { return chance(0.4) ? pick(@int8_special) : below(2**31) - 2**30; }

sub numeric_lit
{
	return pick(@numeric_special) if chance(0.3);
	my $v = sprintf('%.*f', below(10), unit_rand() * 10**below(8));
	return chance(0.1) ? "-$v" : $v;
}

sub ts_lit
{
	return pick(@ts_special) if chance(0.2);
	if (chance(0.1))
	{
		# anywhere in the timestamp range, BC included
		my $year = 1 + below(294275);
		my $bc = chance(0.1) && $year < 4714 ? ' BC' : '';
		return sprintf(q{'%04d-%02d-%02d %02d:%02d:%02d.%06d+00%s'},
			$year, 1 + below(12), 1 + below(28), below(24), below(60), below(60),
			below(1000000), $bc);
	}
	return sprintf(q{'%04d-%02d-%02d %02d:%02d:%02d+%02d'},
		1990 + below(40), 1 + below(12), 1 + below(28), below(24), below(60),
		below(60), below(13));
}
sub interval_lit
{
	return pick(@interval_special) if chance(0.3);
	return sprintf(q{'%d days'}, 1 + below(30));
}

sub bool_lit { return pick('true', 'true', 'true', 'false', 'NULL'); }

my @junk_fields = ('', 'x', '1e999', '-', 'NaN', 'inf', '"1"', '(1)', ' ', '1,2');

# a model composite: mostly plausible, sometimes garbage or malformed
sub model_lit
{
	my ($type, $nparams) = @_;
	return "NULL::post_purchase.$type" if chance(0.02);
	if (chance(0.04))
	{
		my @f = map { chance(0.5) ? pick(@junk_fields) : g17(unit_rand()) }
		  1 .. (3 + below(7));
		return quote_literal('(' . join(',', @f) . ')') . "::post_purchase.$type";
	}
	return "ROW(1, 2)::post_purchase.$type" if chance(0.01);
	my @params = map { param_lit() } 1 .. $nparams;
	# Gamma-Gamma needs q > 1: keep most q there
	$params[1] = g17(1 + exp(unit_rand() * 6 - 3)) if $type eq 'gamma_gamma_model' && chance(0.8);
	return 'ROW(' . join(', ', map { "${_}::float8" } @params, float_lit(), float_lit())
	  . ', ' . bool_lit() . ")::post_purchase.$type";
}
sub bgnbd_lit { return model_lit('bgnbd_model', 4); }
sub gg_lit { return model_lit('gamma_gamma_model', 3); }

# a customer summary (frequency, recency, t): mostly valid
sub customer_lits
{
	return (float_lit(), float_lit(), float_lit()) if chance(0.2);
	my $x = chance(0.3) ? 0 : chance(0.9) ? 1 + below(60) : pick(1e6, 1e12, 2**53, 1e300);
	my $t = chance(0.1) ? pick(0, 1e-300, 1e300, 1.7976931348623157e308) : unit_rand() * 2000;
	my $tx = $x > 0 ? $t * unit_rand() : 0;
	return (g17($x), g17($tx), g17($t));
}

sub text_lit
{
	return 'NULL' if chance(0.05);
	return q{''} if chance(0.05);
	return q{repeat('x', 100000)} if chance(0.01);
	my @chars = ('a' .. 'z', 'A', 'Z', '0' .. '9', '_', '.', ' ', '{', '}', '/', "'", 'é', '日');
	return quote_literal(join('', map { pick(@chars) } 1 .. (1 + below(20))));
}

# JSON for payload templates and contexts
my @keys = ('a', 'b', 'customer', 'order', 'clv_12m', 'first_name', 'x.y', '', 'é');
my @placeholder_strings = (
	'{{a}}', '{{ customer.clv_12m }}', 'Hi {{customer.first_name}}!', '{{order}}',
	'{{a.b.c.d.e}}', '{{', '}}', '{{}}', '{{ }}', '{{a', 'a}}', '{{1a}}', '{{_}}',
	'{{a..b}}', '{{.a}}', '{{a.}}', '{{{{a}}}}', '{{a}}{{b}}{{a}}', '{{é}}',
	'{{ ' . ('a' x 300) . ' }}', '{{' . (' ' x 200) . 'a}}', "{{a}}\n{{b}}", '\u0000');

sub json_value
{
	my ($depth) = @_;
	my $kind = below($depth > 3 ? 5 : 8);
	return pick('null', 'true', 'false') if $kind == 0;
	return pick('0', '-0', '1.5', '1e308', '-1e-308', '1e1000', '123456789012345678901234567890',
		'0.000000000000000000001')
	  if $kind == 1;
	if ($kind <= 4)
	{
		my $s = chance(0.7) ? pick(@placeholder_strings) : join('', map { pick('a', ' ', '{', '}', '.') } 1 .. below(12));
		$s =~ s/\\(?!u0000)/\\\\/g;
		$s =~ s/"/\\"/g;
		$s =~ s/\n/\\n/g;
		return qq{"$s"};
	}
	if ($kind <= 6)
	{
		return '{' . join(', ', map { qq{"} . pick(@keys) . qq{": } . json_value($depth + 1) } 1 .. below(5)) . '}';
	}
	return '[' . join(', ', map { json_value($depth + 1) } 1 .. below(5)) . ']';
}
sub jsonb_lit
{
	return 'NULL' if chance(0.03);
	return quote_literal(json_value(0)) . '::jsonb';
}

# ---------------------------------------------------------------------------
# The calls
# ---------------------------------------------------------------------------
my @calls;    # [function, sql, check, split, tz]

sub add_call
{
	my ($fn, $sql, $chk, %opt) = @_;
	push @calls, [ $fn, $sql, $chk, $opt{split} ? 'true' : 'false', $opt{tz} ];
}

sub n { return int($_[0] * $scale); }

my $probability = q{r IS NULL OR (r >= 0 AND r <= 1)};
my $non_negative = q{r IS NULL OR (r >= 0 AND r < 'Infinity')};

for (1 .. n(400))
{
	my ($x, $tx, $t) = customer_lits();
	add_call('bgnbd_p_alive',
		"SELECT post_purchase.bgnbd_p_alive(${\ bgnbd_lit()}, ${x}::float8, ${tx}::float8, ${t}::float8)",
		$probability);
}
for (1 .. n(300))
{
	my ($x, $tx, $t) = customer_lits();
	my $h = chance(0.8) ? g17(unit_rand() * 400) : float_lit();
	add_call('bgnbd_expected_purchases',
		"SELECT post_purchase.bgnbd_expected_purchases(${\ bgnbd_lit()}, ${x}::float8, ${tx}::float8, ${t}::float8, ${h}::float8)",
		$non_negative);
}
for (1 .. n(200))
{
	my $h = chance(0.8) ? g17(unit_rand() * 400) : float_lit();
	add_call('bgnbd_expected_purchases',
		"SELECT post_purchase.bgnbd_expected_purchases(${\ bgnbd_lit()}, ${h}::float8)", $non_negative);
}
for (1 .. n(300))
{
	my $t = chance(0.8) ? g17(unit_rand() * 400) : float_lit();
	my $k = chance(0.8) ? below(20) : int_lit();
	add_call('bgnbd_probability_of_purchases',
		"SELECT post_purchase.bgnbd_probability_of_purchases(${\ bgnbd_lit()}, ${t}::float8, ${k}::integer)",
		$probability);
}
for (1 .. n(300))
{
	my ($x) = customer_lits();
	my $m = chance(0.8) ? g17(unit_rand() * 500) : float_lit();
	add_call('gamma_gamma_expected_value',
		"SELECT post_purchase.gamma_gamma_expected_value(${\ gg_lit()}, ${x}::float8, ${m}::float8)",
		$non_negative);
}
for (1 .. n(200))
{
	my ($x, $tx, $t) = customer_lits();
	my $m = chance(0.8) ? g17(unit_rand() * 500) : float_lit();
	my $months = chance(0.85) ? below(25) : chance(0.3) ? 1200 : int_lit();
	my $d = chance(0.7) ? '0.01' : float_lit();
	my $unit = chance(0.7) ? q{'1 day'} : interval_lit();
	add_call('clv',
		"SELECT post_purchase.clv(${\ bgnbd_lit()}, ${\ gg_lit()}, ${x}::float8, ${tx}::float8, ${t}::float8, ${m}::float8, ${months}::integer, ${d}::float8, ${unit}::interval)",
		$non_negative);
}
for (1 .. n(100))
{
	my $customers = chance(0.9) ? below(30) : pick('NULL', '-1', '-2147483648');
	my $t = chance(0.8) ? g17(unit_rand() * 100) : float_lit();
	my ($model, $seed) = (bgnbd_lit(), int8_lit());
	# the function is strict: a NULL argument gives no rows
	my $rows = (grep { /^NULL/ } $model, $customers, $t, $seed) ? 0 : $customers < 0 ? 0 : $customers;
	add_call('bgnbd_simulate',
		"SELECT coalesce(bool_and(s.frequency >= 0 AND s.frequency < 'Infinity' AND s.recency >= 0 AND s.recency <= s.t), true) AND count(*) = $rows FROM post_purchase.bgnbd_simulate($model, ${customers}::integer, ${t}::float8, ${seed}::bigint) s",
		'r');
}
for (1 .. n(400))
{
	my $ts = ts_lit();
	my $q = chance(0.7) ? below(100) : numeric_lit();
	my $d = chance(0.7) ? below(100) . '.5' : numeric_lit();
	add_call('replenishment_due',
		"SELECT post_purchase.replenishment_due(${ts}::timestamptz, ${q}::numeric, ${d}::numeric)",
		"r IS NULL OR r >= ${ts}::timestamptz");
}
for (1 .. n(150))
{
	my ($rs, $fs) = map { chance(0.8) ? 1 + below(5) : int_lit() } 1 .. 2;
	add_call('rfm_segment', "SELECT post_purchase.rfm_segment(${rs}::integer, ${fs}::integer)",
		q{r IS NULL OR r IN ('Hibernating', 'At Risk', 'Can''t Lose Them', 'About to Sleep', 'Need Attention', 'Loyal Customers', 'Promising', 'Potential Loyalists', 'New Customers', 'Champions')});
}
for (1 .. n(300))
{
	my $cuts;
	if (chance(0.1))
	{
		$cuts = pick('NULL', q{'{}'}, q{'{{1,2},{3,4}}'}, q{'[0:3]={1,2,3,4}'}, q{'{1,2,3}'},
			q{'{NULL,1,2,3}'}, q{'{1,2,3,4,5}'});
	}
	else
	{
		my @c = sort { $a <=> $b } map { unit_rand() * 100 } 1 .. 4;
		@c = map { chance(0.15) ? float_lit() : g17($_) } @c;
		$cuts = 'ARRAY[' . join(', ', map { "${_}::float8" } @c) . ']';
	}
	my $v = chance(0.7) ? g17(unit_rand() * 120 - 10) : float_lit();
	add_call('rfm_score', "SELECT post_purchase.rfm_score(${v}::float8, ${cuts}::float8[])",
		q{r IS NULL OR r BETWEEN 1 AND 5});
}
for (1 .. n(400))
{
	add_call('render_payload', "SELECT post_purchase.render_payload(${\ jsonb_lit()}, ${\ jsonb_lit()})",
		q{r IS NULL OR jsonb_typeof(r) IS NOT NULL});
}
# render_message() must render as render_payload() with the fields built
# into an object under the context, the way the workers rendered before it
my @field_templates = (
	'{"a": "{{customer_id}}", "b": "x {{enrollment_id}} {{enrolled_at}} y", "c": ["{{journey}}", "{{variant}}"]}',
	'{"s": "{{step}}{{channel}}{{address}}", "n": "{{enrollment_id}}", "t": "{{enrolled_at}}", "o": "{{order}}"}',
	'{"token": "{{message_id}}", "in_text": "survey/{{message_id}}?c={{customer_id}}"}',
	'{"c": "{{customer}}", "v": "{{customer.a}}", "w": "Hi {{customer.first_name}}: {{customer.clv_12m}}"}',
	'"{{customer_id}}"', '"{{customer_id.x}}"', '["{{a}}", "{{enrolled_at}}", 7]');
my @field_contexts = ('{"customer_id": "from the context", "order": {"id": 1}}', '{"a": 1}', '{}');
for (1 .. n(400))
{
	my $template = chance(0.6) ? quote_literal(pick(@field_templates)) . '::jsonb' : jsonb_lit();
	my $context = chance(0.5) ? quote_literal(pick(@field_contexts)) . '::jsonb' : jsonb_lit();
	my $fields = join(', ', jsonb_lit(), map({ text_lit() } 1 .. 6), int8_lit() . '::bigint',
		ts_lit() . '::timestamptz', pick('NULL', 'gen_random_uuid()', q{'00000000-0000-7000-8000-000000000000'}) . '::uuid');
	add_call(
		'render_message', qq{
SELECT CASE WHEN x.t IS NULL THEN x.m IS NULL
			WHEN jsonb_typeof(x.c) = 'object'
			THEN x.m IS NOT DISTINCT FROM post_purchase.render_payload(x.t, jsonb_build_object('customer', x.cu,
				'customer_id', x.id, 'journey', x.j, 'step', x.s, 'variant', x.v, 'channel', x.ch,
				'address', x.ad, 'enrollment_id', x.e, 'enrolled_at', x.at, 'message_id', x.mi) || x.c)
			ELSE jsonb_typeof(x.m) IS NOT NULL END
FROM (SELECT f.*, post_purchase.render_message(f.t, f.c, f.cu, f.id, f.j, f.s, f.v, f.ch, f.ad, f.e, f.at, f.mi) AS m
	  FROM (SELECT $template, $context, $fields) f(t, c, cu, id, j, s, v, ch, ad, e, at, mi)) x},
		q{r}, tz => pick(@zones));
}
for (1 .. n(100))
{
	add_call('stable_bucket', "SELECT post_purchase.stable_bucket(${\ text_lit()}, ${\ int8_lit()}::bigint)",
		q{r IS NULL OR r BETWEEN 0 AND 9999});
	add_call('in_holdout',
		"SELECT post_purchase.in_holdout(${\ text_lit()}, ${\ text_lit()}, ${\ numeric_lit()}::numeric)",
		'true');
}
for (1 .. n(150))
{
	my $variants = chance(0.7)
	  ? quote_literal('{' . join(', ', map { qq{"} . pick('A', 'B', 'C', 'control', '') . qq{": } . pick(0, 1, 50, 0.5, -1, 1e300, '1e1000', '"x"', 'null', '[]') } 1 .. below(4)) . '}') . '::jsonb'
	  : jsonb_lit();
	add_call('pick_variant',
		"SELECT post_purchase.pick_variant(${\ text_lit()}, ${\ text_lit()}, $variants)",
		"r IS NULL OR ($variants) ? r");
	add_call('check_variants', "SELECT post_purchase.check_variants($variants)::text", 'true');
}
for (1 .. n(100))
{
	my ($x, $tx, $t) = customer_lits();
	my $m = chance(0.8) ? below(500) . '.25' : numeric_lit();
	my $d = chance(0.7) ? '0.01' : float_lit();
	add_call('predicted_clv_12m',
		"SELECT post_purchase.predicted_clv_12m(ROW(1, now(), 10, ${\ bgnbd_lit()}, ${\ gg_lit()}, NULL)::post_purchase.models, ${x}::float8, ${tx}::float8, ${t}::float8, ${m}::numeric, ${d}::float8)",
		$non_negative);
}
for (1 .. n(20))
{
	add_call('setting', "SELECT post_purchase.setting(${\ pick(text_lit(), q{'time_zone'}, q{'today'})})", 'true');
	add_call('setting_list',
		"SELECT post_purchase.setting_list(${\ pick(text_lit(), q{'channels'}, q{'quiet_hours_channels'})})",
		'true');
	add_call('shop_today', 'SELECT post_purchase.shop_today()', 'r IS NOT NULL', tz => pick(@zones));
	add_call('uuid_v7', 'SELECT post_purchase.uuid_v7()', q{substr(r::text, 15, 1) = '7'}, tz => pick(@zones));
	add_call('quiet_hours_end',
		"SELECT post_purchase.quiet_hours_end(${\ text_lit()}, ${\ pick(q{'sms'}, q{'email'}, text_lit())}, ${\ ts_lit()}::timestamptz)",
		'true');
}

# one customer's metrics from a state row, what they are computed with, no stored prediction
sub date_lit { return chance(0.1) ? 'NULL' : "(${\ ts_lit()}::timestamptz)::date"; }
sub cuts_lit
{
	my @cuts = chance(0.3) ? map { float_lit() } 1 .. 4 : sort { $a <=> $b } map { below(400) } 1 .. 4;
	return 'ARRAY[' . join(', ', map { "${_}::float8" } @cuts) . ']';
}
for (1 .. n(200))
{
	my $state = join(', ',
		text_lit(), chance(0.8) ? 1 + below(50) : int8_lit(), numeric_lit(), ts_lit() . '::timestamptz',
		ts_lit() . '::timestamptz', chance(0.8) ? 1 + below(20) : int8_lit(), date_lit(), date_lit(),
		numeric_lit(), ts_lit() . '::timestamptz');
	my $model = chance(0.2) ? 'NULL' : "ROW(1, now(), 10, ${\ bgnbd_lit()}, ${\ gg_lit()}, ${\ float_lit()})";
	my $cuts = chance(0.2) ? 'NULL' : "ROW(now(), ${\ cuts_lit()}, ${\ cuts_lit()}, ${\ cuts_lit()})";
	my $today = date_lit();
	add_call('metrics_of',
		"SELECT m FROM post_purchase.metrics_of(ROW($state)::post_purchase.customer_state, $today, "
		  . "${\ int_lit()}, ${\ int_lit()}, ${\ float_lit()}::float8, ${model}::post_purchase.models, "
		  . "${cuts}::post_purchase.rfm_cuts) m",
		q{(r).r_score IS NULL OR (r).r_score BETWEEN 1 AND 5});
	# the metrics' one definitions, which the view and metrics_of() call
	add_call('monetary_value',
		"SELECT post_purchase.monetary_value(${\ numeric_lit()}, ${\ numeric_lit()}, ${\ int8_lit()}::int8)", 'true');
	add_call('customer_age_days',
		"SELECT post_purchase.customer_age_days(${\ date_lit()}, ${\ date_lit()}, ${\ date_lit()})", 'true');
	add_call('recency_score', "SELECT post_purchase.recency_score(${\ int_lit()}, ${\ cuts_lit()})",
		q{r IS NULL OR r BETWEEN 1 AND 5});
	add_call('lifecycle_stage',
		"SELECT post_purchase.lifecycle_stage(${\ int_lit()}, ${\ int8_lit()}::int8, ${\ float_lit()}::float8, "
		  . "${\ float_lit()}::float8, ${\ int_lit()}, ${\ int_lit()})",
		q{r IN ('lapsed', 'at_risk', 'vip', 'new', 'returning')});
	add_call('next_replenishment_due',
		"SELECT post_purchase.next_replenishment_due(${\ ts_lit()}::timestamptz, ${\ date_lit()}, ${\ date_lit()}, "
		  . "${\ int8_lit()}::int8)", 'true', tz => pick(@zones));
	add_call('today_in_zone', "SELECT post_purchase.today_in_zone(${\ date_lit()}, ${\ pick(text_lit(), map { qq{'$_'} } @zones)})",
		'true', tz => pick(@zones));
}

# aggregates over small generated sets, and over none
sub values_of
{
	my ($rows, @types) = @_;
	return 'SELECT ' . join(', ', map { "NULL::$_" } @types) . ' WHERE false' unless @$rows;
	return 'VALUES ' . join(', ', map {
		my $row = $_;
		'(' . join(', ', map { "$row->[$_]::$types[$_]" } 0 .. $#types) . ')'
	} @$rows);
}

for (1 .. n(200))
{
	my @rows = map { [ chance(0.95) ? below(11) : int_lit() ] } 1 .. below(30);
	my $from = values_of(\@rows, 'integer');
	if (chance(0.5))
	{
		add_call('nps', "SELECT post_purchase.nps(v) FROM ($from) t(v)",
			q{r IS NULL OR r BETWEEN -100 AND 100});
	}
	else
	{
		add_call('nps_summary', "SELECT post_purchase.nps_summary(v) FROM ($from) t(v)", 'mut.sane(r)');
	}
}
for (1 .. n(300))
{
	my $observed = chance(0.8) ? q{'2030-01-01 00:00:00+00'} : ts_lit();
	my $unit = chance(0.5) ? undef : chance(0.7) ? pick(q{'1 day'}, q{'7 days'}) : interval_lit();
	my @rows = map {
		[ ts_lit(), numeric_lit(), chance(0.97) ? $observed : ts_lit(),
			defined $unit ? (chance(0.97) ? $unit : interval_lit()) : () ]
	} 1 .. below(12);
	my @types = ('timestamptz', 'numeric', 'timestamptz', defined $unit ? 'interval' : ());
	my $args = defined $unit ? 'o, a, u, n' : 'o, a, u';
	add_call('rfm_summary',
		"SELECT post_purchase.rfm_summary($args) FROM (${\ values_of(\@rows, @types)}) t(o, a, u${\ (defined $unit ? ', n' : '')})",
		'mut.sane(r)', tz => pick(@zones));
}
for (1 .. n(200))
{
	my @rows = map { [ ts_lit() ] } 1 .. below(15);
	add_call('purchase_cycle',
		"SELECT post_purchase.purchase_cycle(o) FROM (${\ values_of(\@rows, 'timestamptz')}) t(o)",
		'mut.sane(r)', tz => pick(@zones));
}
for (1 .. n(150))
{
	my $weighted = chance(0.5);
	my @rows = map {
		[ customer_lits(), $weighted ? (chance(0.8) ? g17(unit_rand() * 10) : float_lit()) : () ]
	} 1 .. below(25);
	my @types = ('float8', 'float8', 'float8', $weighted ? 'float8' : ());
	add_call('bgnbd_fit',
		"SELECT post_purchase.bgnbd_fit(x, tx, t${\ ($weighted ? ', w' : '')}) FROM (${\ values_of(\@rows, @types)}) s(x, tx, t${\ ($weighted ? ', w' : '')})",
		'mut.sane(r)');
}
for (1 .. n(150))
{
	my $weighted = chance(0.5);
	my @rows = map {
		[ (customer_lits())[0], chance(0.8) ? g17(unit_rand() * 300) : float_lit(),
			$weighted ? (chance(0.8) ? g17(unit_rand() * 10) : float_lit()) : () ]
	} 1 .. below(25);
	my @types = ('float8', 'float8', $weighted ? 'float8' : ());
	add_call('gamma_gamma_fit',
		"SELECT post_purchase.gamma_gamma_fit(x, m${\ ($weighted ? ', w' : '')}) FROM (${\ values_of(\@rows, @types)}) s(x, m${\ ($weighted ? ', w' : '')})",
		'mut.sane(r)');
}

# the survey metrics: answers mostly on one supported scale, sometimes off
# the scale, on another scale, on an unknown or NULL scale
for (1 .. n(200))
{
	my $scale = chance(0.9) ? pick(3, 5, 7, 10) : int_lit();
	my @rows = map {
		[ chance(0.97) ? 1 + below($scale =~ /^\d+$/ && $scale > 0 && $scale <= 10 ? $scale : 10) : int_lit(),
			chance(0.99) ? $scale : pick(3, 5, 7, 10, int_lit()) ]
	} 1 .. below(30);
	my $from = values_of(\@rows, 'integer', 'integer');
	my $args = chance(0.2) ? 'v' : 'v, s';
	my ($fn, $chk) = @{ pick([ 'csat', q{r IS NULL OR r BETWEEN 0 AND 100} ],
		[ 'csat_summary', 'mut.sane(r)' ], [ 'ces_summary', 'mut.sane(r)' ]) };
	add_call($fn, "SELECT post_purchase.$fn($args) FROM ($from) t(v, s)", $chk);
}

# ---------------------------------------------------------------------------
# Running calls: each is its own statement (so statement_timeout applies to
# each), in batches of one psql session.  A crash ends the session: the call
# it was running is the culprit, the batch goes on after it once the server
# is back.
# ---------------------------------------------------------------------------
my @failures;
my %outcomes;    # function => { ok, error, ... } counts

sub run_calls
{
	my ($list, $on_result) = @_;
	my $i = 0;
	while ($i < @$list)
	{
		my $end = $i + 250 < @$list ? $i + 250 : scalar @$list;
		my $script = "SET statement_timeout = '60s';\n";
		for my $j ($i .. $end - 1)
		{
			my ($fn, $sql, $chk, $split, $tz) = @{ $list->[$j] };
			$tz = defined $tz ? quote_literal($tz) : 'NULL';
			$script .= "SELECT $j, mut.try(\$mutcall\$$sql\$mutcall\$, \$mutchk\$$chk\$mutchk\$, $split, $tz);\n";
		}
		my ($stdout, $stderr);
		$node->psql('postgres', $script, stdout => \$stdout, stderr => \$stderr, on_error_stop => 0);
		my %got;
		for my $line (split /\n/, $stdout // '')
		{
			$got{$1} = $2 if $line =~ /^(\d+)\|(.*)$/s;
		}
		my $next = $end;
		for my $j ($i .. $end - 1)
		{
			if (!exists $got{$j})
			{
				my $lost = ($stderr // '') =~ /server closed the connection|connection to server was lost|terminating connection/;
				$on_result->($j, $lost ? 'crash' : 'no result: ' . ($stderr // ''));
				if ($lost)
				{
					# wait for the crash restart, then go on after this call
					$node->poll_query_until('postgres', 'SELECT true');
					$next = $j + 1;
					last;
				}
				next;
			}
			$on_result->($j, $got{$j});
		}
		$i = $next;
	}
}

# every psql session flushes its statistics when it ends
my $stats_sql = q{SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()};
my $start_time = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');
my $commits_before = $node->safe_psql('postgres', $stats_sql);
my $log_offset = -s $node->logfile;
# a session that lives through the whole test: a crash restart would end it
my $sentinel = $node->background_psql('postgres');
my $sentinel_pid = $sentinel->query_safe('SELECT pg_backend_pid()');

sub judge
{
	my ($call, $outcome) = @_;
	my ($fn, $sql) = @$call;
	my $kind = $outcome =~ /^(ok|insane|error XX000|error|crash|noplan|no result)/ ? $1 : 'other';
	$outcomes{$fn}{$kind eq 'error XX000' ? 'XX000' : $kind}++;
	return if $kind eq 'ok' || ($kind eq 'error' && $outcome !~ /^error (XX|57014)/);
	push @failures, "$fn: $outcome\n    seed $seed, call: $sql";
}

my $t0 = time;
run_calls(\@calls, sub { judge($calls[ $_[0] ], $_[1]); });
note sprintf('%d random calls in %.1f s', scalar @calls, time - $t0);

# ---------------------------------------------------------------------------
# Crafted aggregate states.  First some real ones, from random inputs.
# ---------------------------------------------------------------------------
my (@state_queries, @state_kinds);    # kinds: the crafted aggregate that serializes them again
for (1 .. n(30))
{
	my @rows = map { [ below(11) ] } 1 .. below(40);
	push @state_queries, "SELECT mut.nps_state(v) FROM (${\ values_of(\@rows, 'integer')}) t(v)";
	push @state_kinds, 'nps_serial';
	my $observed = chance(0.8) ? q{'2030-01-01 00:00:00+00'} : ts_lit();
	my $unit = chance(0.7) ? q{'1 day'} : interval_lit();
	@rows = map { [ ts_lit(), numeric_lit(), $observed, $unit ] } 1 .. below(12);
	push @state_queries,
	  "SELECT mut.rfm_state(o, a, u, n) FROM (${\ values_of(\@rows, 'timestamptz', 'numeric', 'timestamptz', 'interval')}) t(o, a, u, n)";
	push @state_kinds, 'rfm_serial';
	@rows = map { [ ts_lit() ] } 1 .. below(15);
	push @state_queries, "SELECT mut.cycle_state(o) FROM (${\ values_of(\@rows, 'timestamptz')}) t(o)";
	push @state_kinds, 'cycle_serial';
	@rows = map { [ customer_lits(), g17(unit_rand() * 5) ] } 1 .. below(15);
	push @state_queries,
	  "SELECT mut.bgnbd_state(x, tx, t, w) FROM (${\ values_of(\@rows, 'float8', 'float8', 'float8', 'float8')}) s(x, tx, t, w)";
	push @state_kinds, 'fit_serial';
	@rows = map { [ 1 + below(20), g17(unit_rand() * 300), g17(unit_rand() * 5) ] } 1 .. below(15);
	push @state_queries,
	  "SELECT mut.gg_state(x, m, w) FROM (${\ values_of(\@rows, 'float8', 'float8', 'float8')}) s(x, m, w)";
	push @state_kinds, 'fit_serial';
}
for (1 .. n(30))
{
	my $scale = pick(3, 5, 7, 10);
	my @rows = map { [ 1 + below($scale), $scale ] } 1 .. below(40);
	push @state_queries, "SELECT mut.survey_state(v, s) FROM (${\ values_of(\@rows, 'integer', 'integer')}) t(v, s)";
	push @state_kinds, 'survey_serial';
}
my (@real_states, @real_kinds);
{
	my $sql = join(";\n",
		map { "SELECT encode(mut.state_or_null(${\ quote_literal($_)}), 'hex')" } @state_queries);
	# one line per query, empty where the input made no state
	my @lines = split /\n/, $node->safe_psql('postgres', $sql), -1;
	for my $q (0 .. $#state_queries)
	{
		next unless ($lines[$q] // '') =~ /^[0-9a-f]+$/;
		push @real_states, pack('H*', $lines[$q]);
		push @real_kinds, $state_kinds[$q];
	}
	cmp_ok(scalar @real_states, '>=', scalar(@state_queries) / 2,
		'most of the generated aggregate states are valid');
}

# field values for crafted states
my @i64 = (
	0, 1, -1, 2, 9223372036854775807, -9223372036854775807 - 1, 9223372036854775806,
	4294967296, 2147483647, -211813488000000000, 9223371331200000000, 9223371331199999999,
	-211813488000000001, 86400000000);
my @i32 = (0, 1, -1, 2, 2147483647, -2147483648, 106741026, 106741027, -2451545, -2451546, 8000, 8001);
my @f64 = (0, -0.0, 1, -1, 0.5, 7, 1e-300, 1e300, 1.7976931348623157e308, 5e-324, $INF, -$INF, $NAN, 2**53 + 1, 1e15);
my @amounts = ('0', '1.5', '-3', 'NaN', 'Infinity', '-Infinity', '1e131071', '-1e131071', '', 'abc', '12.34.5', ' 7 ',
	'99999999999999999999999999999999999999.12345678', '1e-16383', '0.000000001');

sub craft_i64 { return chance(0.7) ? pick(@i64) : below(2**31) * 86400000000 - 2**30 * 86400000000; }
sub craft_i32 { return chance(0.6) ? pick(@i32) : below(20000) - 5000; }

sub craft_amount
{
	my $text = pick(@amounts);
	my $len = chance(0.9) ? length($text) : pick(-1, 0, 1000, 2147483647, length($text) + 1);
	return pack('l>l>', chance(0.8) ? below(10) : craft_i32(), $len) . $text;
}

sub craft_dayset
{
	my $n = chance(0.5) ? below(5) : below(40);
	my @days = map { craft_i32() } 1 .. $n;
	@days = sort { $a <=> $b } @days if chance(0.6);
	my $count = chance(0.9) ? $n : pick(-1, $n + 1, $n - 1, 2147483647, -2147483648);
	return pack('l>', $count) . pack('l>*', @days);
}

# the zone of a day-counting state: its name's length, then the name
sub craft_zone
{
	my $zone = chance(0.8) ? pick(@zones) : pick('', 'No/Such_Zone', 'x' x 300, "UTC\0x");
	my $len = chance(0.9) ? length $zone : pick(-1, 0, 256, 2147483647, length($zone) + 1);
	return pack('l>', $len) . $zone;
}

sub craft_state
{
	my $fmt = pick('nps', 'rfm', 'cycle', 'fit');
	return pack('q>q>q>', map { chance(0.5) ? below(100) : craft_i64() } 1 .. 3) if $fmt eq 'nps';
	return pack('q>d>', craft_i64(), chance(0.7) ? pick(1, 7, 1e-11) : pick(@f64)) . craft_zone()
	  . pack('l>l>', craft_i32(), craft_i32())
	  . craft_amount() . craft_amount() . craft_dayset()
	  if $fmt eq 'rfm';
	return pack('q>', craft_i64()) . craft_zone() . craft_dayset() if $fmt eq 'cycle';
	my $n = below(8);
	my $items = '';
	for (1 .. $n)
	{
		$items .= pack('d>4',
			map { chance(0.7) ? pick(1, 3, 10, 100, 0.5) : pick(@f64) } 1 .. 4);
	}
	return pack('q>', chance(0.9) ? $n : craft_i64()) . $items;
}

sub mutate_state
{
	my ($s) = @_;
	my $len = length $s;
	my $how = below(6);
	if ($how == 0 && $len)
	{
		# flip a few bits
		for (1 .. 1 + below(3))
		{
			my $pos = below($len);
			substr($s, $pos, 1) = chr(ord(substr($s, $pos, 1)) ^ (1 << below(8)));
		}
	}
	elsif ($how == 1) { $s = substr($s, 0, below($len + 1)); }
	elsif ($how == 2) { $s .= join('', map { chr(below(256)) } 1 .. 1 + below(9)); }
	elsif ($how == 3 && $len >= 4)
	{
		# an aligned word becomes an extreme
		my $pos = 4 * below(int($len / 4));
		substr($s, $pos, 4) = pack('l>', pick(@i32));
	}
	elsif ($how == 4 && $len >= 8)
	{
		my $pos = 4 * below(int(($len - 4) / 4));
		substr($s, $pos, 8) = chance(0.5) ? pack('q>', pick(@i64)) : pack('d>', pick(@f64));
	}
	else
	{
		# splice two states
		my $other = pick(@real_states);
		$s = substr($s, 0, below($len + 1)) . substr($other, below(length($other) + 1));
	}
	return $s;
}

sub random_blob
{
	my $kind = below(10);
	return join('', map { chr(below(256)) } 1 .. below(chance(0.9) ? 64 : 600)) if $kind == 0;
	return pick(@real_states) if $kind <= 2;
	return mutate_state(pick(@real_states)) if $kind <= 6;
	return craft_state();
}

my (@crafted, @blob_rows);
for my $i (1 .. n(1500))
{
	my $name = pick(sort keys %craft);
	push @blob_rows, [ $i, 1, random_blob() ];
	push @blob_rows, [ $i, 2, random_blob() ] if chance(0.4);
	push @crafted,
	  [ "craft_$name",
		"SELECT mut.craft_$name(b, NULL) FILTER (WHERE id = $i) FROM mut.blobs GROUP BY k",
		$craft{$name}[3], 'true', chance(0.2) ? pick(@zones) : undef ];
}
{
	my $sql = "SET enable_partitionwise_aggregate = on;\n";
	my @rows = @blob_rows;
	while (my @chunk = splice(@rows, 0, 500))
	{
		$sql .= 'INSERT INTO mut.blobs VALUES '
		  . join(', ', map { "($_->[0], $_->[1], 1, '\\x" . unpack('H*', $_->[2]) . "'::bytea)" } @chunk)
		  . ";\n";
	}
	$node->safe_psql('postgres', $sql . "ANALYZE mut.blobs;\n");
	$node->safe_psql('postgres', "ALTER DATABASE postgres SET enable_partitionwise_aggregate = on;");
}
$t0 = time;
run_calls(\@crafted, sub { judge($crafted[ $_[0] ], $_[1]); });
note sprintf('%d crafted-state calls in %.1f s', scalar @crafted, time - $t0);

# The same kinds of bytes as values of 1.1's state types (issue 22): the
# text input reads and checks them (a Citus coordinator reads workers'
# partial states so), then the combine and final functions run on them.
my %typed = (
	nps => [ 'nps_state', [ 'nps_state_final', q{r IS NULL OR r BETWEEN -100 AND 100} ],
		[ 'nps_summary_state_final', q{mut.sane(r)} ] ],
	rfm => [ 'rfm_summary_state', [ 'rfm_summary_state_final', q{mut.sane(r)} ] ],
	cycle => [ 'purchase_cycle_state', [ 'purchase_cycle_state_final', q{mut.sane(r)} ] ],
	fit => [ 'model_fit_state', [ 'bgnbd_fit_state_final', q{mut.sane(r)} ],
		[ 'gamma_gamma_fit_state_final', q{mut.sane(r)} ] ],
	survey => [ 'survey_state', [ 'csat_summary_state_final', q{mut.sane(r)} ],
		[ 'ces_summary_state_final', q{mut.sane(r)} ] ],);
my %typed_combine = (nps => 'nps_state_combine', rfm => 'rfm_summary_state_combine',
	cycle => 'purchase_cycle_state_combine', fit => 'model_fit_state_combine', survey => 'csat_state_combine');
my @typed_calls;
for (1 .. n(1500))
{
	my $fmt = pick(sort keys %typed);
	my ($type, @finals) = @{ $typed{$fmt} };
	my ($final, $chk) = @{ pick(@finals) };
	my @states = map { "('\\x' || '" . unpack('H*', random_blob()) . "')::post_purchase.$type" } 1 .. 1 + below(2);
	my $state = @states == 1 ? $states[0] : "post_purchase.$typed_combine{$fmt}($states[0], $states[1])";
	push @typed_calls, [ "typed_$final", "SELECT post_purchase.$final($state)", $chk, 'false',
		chance(0.2) ? pick(@zones) : undef ];
}
$t0 = time;
run_calls(\@typed_calls, sub { judge($typed_calls[ $_[0] ], $_[1]); });
note sprintf('%d typed-state calls in %.1f s', scalar @typed_calls, time - $t0);

# ---------------------------------------------------------------------------
# Overflow and limits: each case must give exactly this outcome.
# ---------------------------------------------------------------------------
my $max8 = '9223372036854775807';
my @expected;    # [name, sql, check, expected outcome (ok or error SQLSTATE), split]

sub expect { push @expected, [@_]; }

# crafted state pairs go to their own ids
my $pair_id = 1_000_000;
my @pair_rows;

sub crafted_call
{
	my ($name, @blobs) = @_;
	$pair_id++;
	push @pair_rows, [ $pair_id, $_ + 1, $blobs[$_] ] for 0 .. $#blobs;
	return "SELECT mut.craft_$name(b, NULL) FILTER (WHERE id = $pair_id) FROM mut.blobs GROUP BY k";
}
sub nps_bytes { return pack('q>q>q>', @_); }

expect('nps_combine: promoter counts summing past INT64_MAX',
	crafted_call('nps_summary', nps_bytes($max8, 0, 0), nps_bytes(1, 0, 0)), 'true', 'error 22003', 1);
expect('nps_combine: detractor counts summing past INT64_MAX',
	crafted_call('nps_final', nps_bytes(0, 0, 9223372036854775000), nps_bytes(0, 0, 808)), 'true', 'error 22003', 1);
expect('nps_summary: responses past INT64_MAX',
	crafted_call('nps_summary', nps_bytes(9223372036854775000, 807, 1)), 'true', 'error 22003', 1);
expect('nps_summary: INT64_MAX responses, exactly',
	crafted_call('nps_summary', nps_bytes(9223372036854775000, 806, 1)),
	q{(r).responses = 9223372036854775807 AND (r).nps = 100 * (9223372036854775000 - 1)::numeric / 9223372036854775807
	  AND (r).margin_of_error < 1e-12}, 'ok', 1);
expect('nps_combine: two halves of INT64_MAX',
	crafted_call('nps_summary', nps_bytes(4611686018427387903, 0, 0), nps_bytes(4611686018427387904, 0, 0)),
	q{(r).promoters = 9223372036854775807}, 'ok', 1);
expect('nps_deserialize: a negative count',
	crafted_call('nps_final', nps_bytes(-1, 0, 0)), 'true', 'error 22P03', 1);
expect('nps: a score past INT32_MAX is out of range, not a promoter',
	'SELECT post_purchase.nps(2147483647)', 'true', 'error 22003');
expect('nps: INT32_MIN', 'SELECT post_purchase.nps(-2147483648)', 'true', 'error 22003');

# survey states: the scale, then the count of each answer of the scale
sub survey_bytes { my ($scale, @counts) = @_; return pack('l>', $scale) . pack('q>*', @counts); }
expect('survey: a valid crafted state',
	crafted_call('csat_summary', survey_bytes(5, 0, 0, 1, 1, 3)),
	q{(r).responses = 5 AND (r).satisfied = 4 AND (r).csat = 80 AND (r).mean = 4.4}, 'ok', 1);
expect('survey: a valid crafted state, as CES',
	crafted_call('ces_summary', survey_bytes(5, 0, 0, 1, 1, 3)),
	q{(r).low_effort = 4 AND (r).mean = 4.4 AND (r).ci_low < 4.4 AND (r).ci_high > 4.4}, 'ok', 1);
expect('survey: the empty state',
	crafted_call('csat_final', survey_bytes(0)), q{r IS NULL}, 'ok', 1);
expect('survey_deserialize: an unknown scale',
	crafted_call('csat_final', survey_bytes(4, 1, 1, 1, 1)), 'true', 'error 22P03', 1);
expect('survey_deserialize: a scale past the histogram',
	crafted_call('ces_summary', survey_bytes(2147483647, 1)), 'true', 'error 22P03', 1);
expect('survey_deserialize: a negative count',
	crafted_call('csat_summary', survey_bytes(3, 1, -1, 1)), 'true', 'error 22P03', 1);
expect('survey_deserialize: a scale without answers',
	crafted_call('csat_summary', survey_bytes(7, 0, 0, 0, 0, 0, 0, 0)), 'true', 'error 22P03', 1);
expect('survey_deserialize: counts past the scale',
	crafted_call('csat_final', survey_bytes(3, 1, 1, 1, 1)), 'true', 'error 22P03', 1);
expect('survey_deserialize: answers without a scale',
	crafted_call('csat_final', survey_bytes(0, 1)), 'true', 'error 22P03', 1);
expect('csat_combine: states of two scales',
	crafted_call('csat_summary', survey_bytes(5, 1, 0, 0, 0, 1), survey_bytes(7, 1, 0, 0, 0, 0, 0, 1)),
	'true', 'error 22023', 1);
expect('ces_combine: states of two scales',
	crafted_call('ces_summary', survey_bytes(3, 1, 0, 1), survey_bytes(10, (1) x 10)), 'true', 'error 22023', 1);
expect('csat_combine: counts summing past INT64_MAX',
	crafted_call('csat_final', survey_bytes(3, $max8, 0, 0), survey_bytes(3, 1, 0, 0)), 'true', 'error 22003', 1);
expect('csat_summary: responses past INT64_MAX',
	crafted_call('csat_summary', survey_bytes(5, 9223372036854775000, 807, 1, 0, 0)), 'true', 'error 22003', 1);
expect('ces_summary: INT64_MAX responses, exactly',
	crafted_call('ces_summary', survey_bytes(3, 9223372036854775000, 806, 1)),
	q{(r).responses = 9223372036854775807 AND (r).low_effort = 1 AND abs((r).mean - 1) < 1e-15
	  AND (r).ci_high - (r).ci_low < 1e-9},
	'ok', 1);
expect('csat_summary: two halves of INT64_MAX, half satisfied',
	crafted_call('csat_summary', survey_bytes(10, 4611686018427387903, (0) x 8, 0), survey_bytes(10, (0) x 9, 4611686018427387904)),
	q{(r).satisfied = 4611686018427387904 AND abs((r).mean - 5.5) < 1e-15 AND abs((r).csat - 50) < 1e-15
	  AND (r).ci_low < 50 AND (r).ci_high > 50 AND (r).ci_high - (r).ci_low < 1e-6}, 'ok', 1);
expect('csat: a score of INT32_MAX', 'SELECT post_purchase.csat(2147483647)', 'true', 'error 22003');
expect('ces_summary: a scale of INT32_MIN', 'SELECT post_purchase.ces_summary(1, -2147483648)', 'true', 'error 22023');

# rfm_summary states: observed_until, unit, zone, first and last day, two amounts, days
sub amount_bytes { my ($text, $scale) = @_; return pack('l>l>', $scale // 0, length $text) . $text; }
sub rfm_bytes
{
	my ($observed, $unit, $first, $last, $total, $first_amount, @days) = @_;
	return pack('q>d>l>a*l>l>', $observed, $unit, 3, 'UTC', $first, $last) . amount_bytes($total)
	  . amount_bytes($first_amount) . pack('l>', scalar @days) . pack('l>*', @days);
}
my $obs2030 = 946684800000000;    # 2030-01-01 in microseconds since 2000
expect('rfm_summary: a valid crafted state',
	crafted_call('rfm_final', rfm_bytes($obs2030, 1, 0, 10, '30', '10', 0, 5, 10)),
	q{(r).frequency = 2 AND (r).recency = 10 AND (r).monetary_value = 10}, 'ok', 1);
expect('rfm_summary: days from INT32_MIN to INT32_MAX, a recency that would wrap',
	crafted_call('rfm_final', rfm_bytes($obs2030, 1, -2147483648, 2147483647, '1', '1', -2147483648, 2147483647)),
	'true', 'error 22P03', 1);
expect('rfm_summary: observed_until past the timestamp range',
	crafted_call('rfm_final', rfm_bytes($max8 - 1, 1, 0, 10, '30', '10', 0, 10)), 'true', 'error 22P03', 1);
expect('rfm_summary: an infinite unit',
	crafted_call('rfm_final', rfm_bytes($obs2030, $INF, 0, 10, '30', '10', 0, 10)), 'true', 'error 22P03', 1);
expect('rfm_summary: days out of order',
	crafted_call('rfm_final', rfm_bytes($obs2030, 1, 0, 10, '30', '10', 10, 0)), 'true', 'error 22P03', 1);
expect('rfm_summary: a NaN amount in a state',
	crafted_call('rfm_final', rfm_bytes($obs2030, 1, 0, 10, 'NaN', '10', 0, 10)), 'true', 'error 22023', 1);
expect('rfm_summary_combine: amount sums past the numeric range',
	crafted_call('rfm_final',
		rfm_bytes($obs2030, 1, 0, 10, '9e131071', '1', 0, 10),
		rfm_bytes($obs2030, 1, 20, 30, '9e131071', '1', 20, 30)),
	'true', 'error 22003', 1);
expect('rfm_summary: amounts summing past the numeric range',
	q{SELECT post_purchase.rfm_summary(o, a, '2030-01-01') FROM (VALUES ('2020-01-01'::timestamptz, ('9e131071')::numeric), ('2020-01-02', '9e131071')) t(o, a)},
	'true', 'error 22003');
expect('rfm_summary: the whole timestamp range in microseconds',
	q{SELECT post_purchase.rfm_summary(o, 1, '294276-12-31 23:59:59.999999+00', '1 microsecond') FROM (VALUES ('4714-11-24 00:00:00+00 BC'::timestamptz), ('294276-12-31 23:59:59.999999+00')) t(o)},
	q{(r).frequency = 1 AND (r).recency = (r).t AND (r).t > 9e18}, 'ok');
expect('rfm_summary: a unit of 178 million years',
	q{SELECT post_purchase.rfm_summary(o, 1, '2030-01-01', '178000000 years') FROM (VALUES ('2020-01-01'::timestamptz), ('2021-01-01')) t(o)},
	q{(r).recency > 0 AND (r).recency < 1e-8}, 'ok');
expect('rfm_summary: a unit of 2147483647 months and days',
	q{SELECT post_purchase.rfm_summary(o, 1, '2030-01-01', '2147483647 months 2147483647 days') FROM (VALUES ('2020-01-01'::timestamptz)) t(o)},
	q{(r).t > 0}, 'ok');
expect('rfm_summary: a unit that is negative on the whole',
	q{SELECT post_purchase.rfm_summary(o, 1, '2030-01-01', '1 month -31 days') FROM (VALUES ('2020-01-01'::timestamptz)) t(o)},
	'true', 'error 22023');

# purchase_cycle states: last purchase, days
sub cycle_bytes { my ($last, @days) = @_; return pack('q>l>a*l>', $last, 3, 'UTC', scalar @days) . pack('l>*', @days); }
expect('purchase_cycle: a valid crafted state',
	crafted_call('cycle_final', cycle_bytes($obs2030, 10950, 10960, 10980)),
	q{(r).purchases = 3 AND (r).median_interval = '15 days' AND (r).mean_interval = '15 days'}, 'ok', 1);
expect('purchase_cycle: a gap from INT32_MIN to INT32_MAX that would wrap',
	crafted_call('cycle_final', cycle_bytes($obs2030, -2147483648, 2147483647)), 'true', 'error 22P03', 1);
expect('purchase_cycle: a last purchase past the timestamp range',
	crafted_call('cycle_final', cycle_bytes($max8 - 1, 0, 10)), 'true', 'error 22P03', 1);
expect('purchase_cycle_combine: the same days from two states',
	crafted_call('cycle_final', cycle_bytes($obs2030, 10950, 10960), cycle_bytes($obs2030, 10950, 10970)),
	q{(r).purchases = 3}, 'ok', 1);
expect('purchase_cycle: the whole timestamp range is one gap, and the next due date is past its end',
	q{SELECT post_purchase.purchase_cycle(o) FROM (VALUES ('4714-11-24 00:00:00+00 BC'::timestamptz), ('294276-12-31 23:59:59.999999+00')) t(o)},
	'true', 'error 22008');
expect('replenishment_due: quantity * days_per_unit past the timestamp range',
	q{SELECT post_purchase.replenishment_due('2024-01-01', 1e20, 1e20)}, 'true', 'error 22008');
expect('replenishment_due: quantity * days_per_unit past the numeric range',
	q{SELECT post_purchase.replenishment_due('2024-01-01', '1e131071', '1e131071')}, 'true', 'error 22003');
expect('replenishment_due: one microsecond past the end of the range',
	q{SELECT post_purchase.replenishment_due('294276-12-31 23:59:59.999999+00', 1, 0.00000000001)},
	'true', 'error 22008');
expect('replenishment_due: the last microsecond of the range',
	q{SELECT post_purchase.replenishment_due('294276-12-31 00:00:00+00', 1, 0.999999999988426)},
	q{r = '294276-12-31 23:59:59.999999+00'}, 'ok');
expect('replenishment_due: days past INT64_MAX microseconds',
	q{SELECT post_purchase.replenishment_due('4714-11-24 00:00:00+00 BC', 106751991167, 1)}, 'true', 'error 22008');
expect('replenishment_due: -infinity stays', q{SELECT post_purchase.replenishment_due('-infinity', '1e131071', 1)},
	q{r = '-infinity'}, 'ok');

# model-fit states: count, then (frequency, recency, t, weight) per summary
sub fit_bytes { my @items = @_; return pack('q>', scalar @items) . join('', map { pack('d>4', @$_) } @items); }
expect('model_fit_deserialize: a count past the bytes',
	crafted_call('bgnbd_final', pack('q>', $max8) . pack('d>4', 1, 1, 2, 1)), 'true', 'error 22P03', 1);
expect('model_fit_deserialize: a NaN summary',
	crafted_call('bgnbd_final', fit_bytes([ 1, 1, 2, 1 ], [ $NAN, 1, 2, 1 ])), 'true', 'error 22P03', 1);
expect('model_fit_deserialize: an infinite weight',
	crafted_call('bgnbd_final', fit_bytes([ 1, 1, 2, $INF ], [ 0, 0, 2, 1 ])), 'true', 'error 22P03', 1);
expect('model_fit_deserialize: a negative weight',
	crafted_call('bgnbd_final', fit_bytes([ 1, 1, 2, -1 ], [ 0, 0, 2, 1 ])), 'true', 'error 22P03', 1);
expect('model_fit_combine: weights summing past the float8 range',
	crafted_call('bgnbd_final', fit_bytes([ 1, 1, 2, 1e308 ], [ 0, 0, 2, 1 ]), fit_bytes([ 1, 1, 2, 1e308 ])),
	'true', 'error 22003', 1);
expect('bgnbd_fit: weights summing past the float8 range',
	q{SELECT post_purchase.bgnbd_fit(x, tx, t, 1e308) FROM (VALUES (1, 1, 2), (0, 0, 2), (1, 1, 2)) s(x, tx, t)},
	'true', 'error 22003');
expect('gamma_gamma_fit: weights summing past the float8 range',
	q{SELECT post_purchase.gamma_gamma_fit(x, m, 1.7976931348623157e308) FROM (VALUES (1, 10), (2, 20), (3, 5), (2, 20)) s(x, m)},
	'true', 'error 22003');
expect('bgnbd_probability_of_purchases: INT32_MAX purchases',
	q{SELECT post_purchase.bgnbd_probability_of_purchases(ROW(0.24, 4.4, 0.79, 2.4, NULL, NULL, true), 39, 2147483647)},
	q{r >= 0 AND r <= 1}, 'ok');
expect('clv: INT32_MAX months', q{SELECT post_purchase.clv(ROW(0.24, 4.4, 0.79, 2.4, NULL, NULL, true), ROW(6, 4, 15, NULL, NULL, true), 2, 30, 38, 35, 2147483647, 0.01)},
	'true', 'error 22023');
expect('bgnbd_simulate: a purchase rate no observation can hold',
	q{SELECT count(*) FROM post_purchase.bgnbd_simulate(ROW(1, 5e-324, 1e-300, 1, NULL, NULL, true), 1, 1)},
	'true', 'error 54000');
expect('in_holdout: a percentage past the numeric range',
	q{SELECT post_purchase.in_holdout('j', 'c', '1e131071')}, 'true', 'error 22003');
expect('stable_bucket: the int8 limits as seeds',
	q{SELECT post_purchase.stable_bucket('c', -9223372036854775808) + post_purchase.stable_bucket('c', 9223372036854775807)},
	q{r BETWEEN 0 AND 19998}, 'ok');

# A state an aggregate wrote itself is not bad input: deserialized and
# serialized again (through a combine), it must come back byte for byte.
my @roundtrips = map {
	[ "roundtrip $real_kinds[$_]", crafted_call($real_kinds[$_], $real_states[$_]),
		q{r = '\x} . unpack('H*', $real_states[$_]) . q{'::bytea}, 'true', undef ]
} 0 .. $#real_states;

{
	my $sql = 'INSERT INTO mut.blobs VALUES '
	  . join(', ', map { "($_->[0], $_->[1], 1, '\\x" . unpack('H*', $_->[2]) . "'::bytea)" } @pair_rows)
	  . ";\nANALYZE mut.blobs;";
	$node->safe_psql('postgres', $sql);
}
{
	my @list = map { [ $_->[0], $_->[1], $_->[2], $_->[4] ? 'true' : 'false', undef ] } @expected;
	my %got;
	run_calls(\@list, sub { $got{ $_[0] } = $_[1]; });
	for my $j (0 .. $#expected)
	{
		my ($name, $sql, $chk, $want) = @{ $expected[$j] };
		my $outcome = $got{$j} // 'no result';
		my $short = $outcome =~ /^(error \w{5})/ ? $1 : $outcome;
		is($short, $want, $name) or diag("call: $sql\noutcome: $outcome");
	}
}
{
	my @bad;
	run_calls(\@roundtrips, sub { push @bad, "$roundtrips[$_[0]][1]: $_[1]" if $_[1] ne 'ok'; });
	is(scalar @bad, 0, scalar(@roundtrips) . ' real aggregate states survive deserialize, combine and serialize unchanged')
	  or diag(join("\n", @bad[ 0 .. ($#bad < 4 ? $#bad : 4) ]));
}

# ---------------------------------------------------------------------------
# Large sets with extreme values: 100,000 rows, serial and parallel plans
# (which serialize, deserialize and combine real states at the limits) must
# agree exactly.
# ---------------------------------------------------------------------------
$t0 = time;
$node->safe_psql(
	'postgres', q{
CREATE TABLE mut.big_orders WITH (parallel_workers = 2) AS
SELECT i % 101 AS customer,
	   CASE i % 13
		   WHEN 0 THEN '4714-11-24 00:00:00+00 BC'::timestamptz
		   WHEN 1 THEN '294276-12-31 23:59:59.999999+00'
		   WHEN 2 THEN '4714-11-24 00:00:00+00 BC'::timestamptz + (i * interval '1 microsecond')
		   WHEN 3 THEN '294276-12-31 00:00:00+00'::timestamptz - i * interval '1 day'
		   ELSE '2000-01-01'::timestamptz + (hashint4(i) % 100000000) * interval '1 second'
	   END AS ordered_at,
	   CASE i % 11
		   WHEN 0 THEN '1e1000'::numeric
		   WHEN 1 THEN '-1e1000'
		   WHEN 2 THEN '1e-1000'
		   WHEN 3 THEN '99999999999999999999999999999999999.99999999'
		   WHEN 4 THEN 0.00000001
		   WHEN 5 THEN -0.00000001
		   WHEN 6 THEN 1e28
		   ELSE (hashint4(i) % 1000000) / 100.0
	   END AS amount,
	   CASE WHEN i % 17 = 0 THEN NULL ELSE abs(hashint4(i)) % 11 END AS score
FROM generate_series(1, 100000) i;
CREATE TABLE mut.big_summaries WITH (parallel_workers = 2) AS
SELECT x, CASE WHEN x = 0 THEN 0 ELSE t * (i % 7) / 7 END AS tx, t,
	   CASE i % 5 WHEN 0 THEN 1e-300 WHEN 1 THEN 1e300 ELSE 1 + i % 3 END AS w,
	   1 + (i % 7) * 1e10 AS spend
FROM (SELECT i, (i % 40)::float8 AS x,
			 CASE i % 9 WHEN 0 THEN 1e-300 WHEN 1 THEN 1e300 WHEN 2 THEN 1e15 ELSE 1 + i % 400 END::float8 AS t
	  FROM generate_series(1, 100000) i) s;
ANALYZE mut.big_orders, mut.big_summaries;
});

my @big = (
	[ 'nps_summary', q{SELECT post_purchase.nps_summary(score)::text FROM mut.big_orders} ],
	[ 'nps by customer', q{SELECT string_agg(n::text, ',' ORDER BY c) FROM (SELECT customer c, post_purchase.nps(score) n FROM mut.big_orders GROUP BY customer) s} ],
	[ 'rfm_summary in days', q{SELECT md5(string_agg(r::text, ',' ORDER BY c)) FROM (SELECT customer c, post_purchase.rfm_summary(ordered_at, amount, '294276-12-31 23:59:59.999999+00') r FROM mut.big_orders GROUP BY customer) s} ],
	[ 'rfm_summary in microseconds', q{SELECT md5(string_agg(r::text, ',' ORDER BY c)) FROM (SELECT customer c, post_purchase.rfm_summary(ordered_at, amount, '294276-12-31 23:59:59.999999+00', '1 microsecond') r FROM mut.big_orders GROUP BY customer) s} ],
	[ 'purchase_cycle', q{SELECT md5(string_agg(r::text, ',' ORDER BY c)) FROM (SELECT customer c, post_purchase.purchase_cycle(ordered_at) r FROM mut.big_orders WHERE ordered_at < '200000-01-01' GROUP BY customer) s} ],
	[ 'purchase_cycle, one group', q{SELECT post_purchase.purchase_cycle(ordered_at)::text FROM mut.big_orders WHERE ordered_at < '200000-01-01'} ],
	# (customer + 0: a filter the planner estimates at a third of the rows,
	# so it still aggregates partially in the workers)
	[ 'rfm_summary, empty', q{SELECT post_purchase.rfm_summary(ordered_at, amount, '2030-01-01') IS NULL FROM mut.big_orders WHERE customer + 0 < 0} ],
	[ 'nps_summary, empty', q{SELECT post_purchase.nps_summary(score)::text FROM mut.big_orders WHERE customer + 0 < 0} ],
	[ 'purchase_cycle, empty', q{SELECT post_purchase.purchase_cycle(ordered_at) IS NULL FROM mut.big_orders WHERE customer + 0 < 0} ],
	[ 'bgnbd_fit, empty', q{SELECT post_purchase.bgnbd_fit(x, tx, t) IS NULL FROM mut.big_summaries WHERE x + 0 < 0} ],
	[ 'gamma_gamma_fit, empty', q{SELECT post_purchase.gamma_gamma_fit(x, spend) IS NULL FROM mut.big_summaries WHERE x + 0 < 0} ],);
push @big,
  [ 'csat_summary', q{SELECT post_purchase.csat_summary(1 + score % 10, 10)::text FROM mut.big_orders} ],
  [ 'ces_summary by customer', q{SELECT md5(string_agg(r::text, ',' ORDER BY c)) FROM (SELECT customer c, post_purchase.ces_summary(1 + score % 7) r FROM mut.big_orders GROUP BY customer) s} ],
  [ 'csat_summary, empty', q{SELECT post_purchase.csat_summary(1 + score % 5)::text FROM mut.big_orders WHERE customer + 0 < 0} ];
my $parallel = q{SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2;};
for my $case (@big)
{
	my ($name, $sql) = @$case;
	my ($ret_s, $serial, $err_s) = $node->psql('postgres', "SET max_parallel_workers_per_gather = 0; $sql");
	my ($ret_p, $par, $err_p) = $node->psql('postgres', "$parallel $sql");
	my $plan = $node->safe_psql('postgres', "$parallel EXPLAIN (COSTS OFF) $sql");
	like($plan, qr/Partial/, "$name: the parallel plan aggregates partially");
	is($ret_s, 0, "$name: serial plan succeeds") or diag($err_s);
	is($par, $serial, "$name: parallel and serial plans agree");
}
is( $node->safe_psql(
		'postgres', q{
SELECT (n.s).responses = n.answers AND (n.s).promoters = n.promoters AND (n.s).passives = n.passives
   AND (n.s).detractors = n.detractors
   AND (n.s).nps = trim_scale(100.0 * (n.promoters - n.detractors) / n.answers)
FROM (SELECT post_purchase.nps_summary(score) s, count(score) answers,
			 count(*) FILTER (WHERE score >= 9) promoters, count(*) FILTER (WHERE score BETWEEN 7 AND 8) passives,
			 count(*) FILTER (WHERE score <= 6) detractors
	  FROM mut.big_orders) n}),
	't', 'nps_summary over 100,000 answers matches count(*) FILTER');

my @fits = (
	[ 'bgnbd_fit', q{SELECT mut.sane(post_purchase.bgnbd_fit(x, tx, t)) FROM mut.big_summaries} ],
	[ 'bgnbd_fit, weighted', q{SELECT mut.sane(post_purchase.bgnbd_fit(x, tx, t, w)) FROM mut.big_summaries} ],
	[ 'gamma_gamma_fit', q{SELECT mut.sane(post_purchase.gamma_gamma_fit(x, spend)) FROM mut.big_summaries} ],
	[ 'gamma_gamma_fit, weighted', q{SELECT mut.sane(post_purchase.gamma_gamma_fit(x, spend, w)) FROM mut.big_summaries} ],);
for my $case (@fits)
{
	my ($name, $sql) = @$case;
	my ($ret, $out, $err) = $node->psql('postgres', "$parallel $sql");
	ok($ret == 0 ? $out eq 't' : $err !~ /XX000|server closed/, "$name over 100,000 extreme summaries: a sane model or a typed error")
	  or diag("$out $err");
}
note sprintf('large sets in %.1f s', time - $t0);

# ---------------------------------------------------------------------------
# The verdict on the random calls, and the server's health
# ---------------------------------------------------------------------------
for my $fn (sort keys %outcomes)
{
	note "$fn: " . join(', ', map { "$_ $outcomes{$fn}{$_}" } sort keys %{ $outcomes{$fn} });
}
is(scalar @failures, 0,
	sprintf('%d random and crafted calls: each returned a sane value or raised a typed error', @calls + @crafted))
  or diag(join("\n", @failures[ 0 .. ($#failures < 29 ? $#failures : 29) ]));

is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server is up');
is($sentinel->query_safe('SELECT pg_backend_pid()'), $sentinel_pid,
	'a session opened before the calls is still there: no crash restart ended it');
$sentinel->quit;
ok(!$node->log_contains(qr/terminated by signal|server process .* was terminated|all server processes terminated/, $log_offset),
	'the server log shows no backend terminated by a signal');
is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'), $start_time, 'the postmaster did not restart');
cmp_ok($node->safe_psql('postgres', $stats_sql), '>', $commits_before,
	'pg_stat_database kept counting: no crash reset the statistics');

$node->stop;
done_testing();
