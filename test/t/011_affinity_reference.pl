# product_affinity agrees with an independent reference: the Python script
# test/reference/affinity_reference.py generates a basket set with a fixed
# seed (ties in time, orders exactly a window apart, repeated products,
# orders without items), computes every pair refresh_product_affinity() must
# keep by loops over each order and each customer's purchases with exact
# fractions, and prints the SQL that loads the baskets through the tracked
# tables, refreshes for each case (window, min_support, min_confidence) and
# compares the table with its rows: counts exactly, ratios as float8 bit for
# bit.  run_tap.sh copies test/reference beside the tests.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $script = "$ENV{TESTDIR}/reference/affinity_reference.py";
ok(-f $script, 'the reference script is beside the tests');

my ($stdout, $stderr);
my $ran = IPC::Run::run([ 'python3', $script, '--sql' ], '>', \$stdout, '2>', \$stderr);
ok($ran, 'the reference script ran') or diag($stderr);
my ($cases) = ($stdout // '') =~ /^-- cases: (\d+)$/m;
cmp_ok($cases // 0, '>=', 9, 'the reference script made its cases');
# every case has rows of both kinds to compare (else "agrees" would say little)
my @runs = ($stderr // '') =~ /^-- run \d+: .*: (\d+) rows$/mg;
ok(@runs >= 3 && !grep({ $_ < 20 } @runs), "every case compares rows: @runs");

my $node = PostgreSQL::Test::Cluster->new('affinity');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION post_purchase');

my @rows = split /\n/, $node->safe_psql('postgres', $stdout);
is(scalar @rows, $cases, 'one comparison per case and check');
for my $row (@rows)
{
	my ($name, $agrees, $detail) = split /\|/, $row, 3;
	ok($agrees eq 't', "$name agrees with the reference") or diag($detail);
}
# both kinds were kept in the unfiltered case
is( $node->safe_psql(
		'postgres',
		q{SELECT string_agg(DISTINCT kind, ',' ORDER BY kind) FROM ref_got WHERE run = 1}),
	'same_order,sequence',
	'the unfiltered case kept pairs of both kinds');

# The same with the least hash memory there is (64 kB): affinity_pairs()
# splits the products A into partitions and reads the items once per
# partition, and must still agree; the tuplestore of kept rows spills too.
my $small = q{SET work_mem = '64kB'; SET hash_mem_multiplier = 1; };
$node->safe_psql('postgres', 'CREATE DATABASE small_memory');
$node->safe_psql('small_memory', 'CREATE EXTENSION post_purchase');
@rows = split /\n/, $node->safe_psql('small_memory', $small . $stdout);
is(scalar @rows, $cases, 'small memory: one comparison per case and check');
for my $row (@rows)
{
	my ($name, $agrees, $detail) = split /\|/, $row, 3;
	ok($agrees eq 't', "small memory: $name agrees with the reference") or diag($detail);
}
my ($ret, $out, $err) = $node->psql('small_memory',
	$small . q{SET client_min_messages = debug1; SELECT post_purchase.refresh_product_affinity('30 days', 0, 0)});
my ($partitions) = $err =~ /affinity_pairs: .* (\d+) partitions/;
cmp_ok($partitions // 0, ">", 1, "small memory: the pairs were counted in partitions") or diag($err);

$node->stop;
done_testing();
