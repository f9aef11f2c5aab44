# csat_summary and ces_summary agree with an independent reference: the
# Python script test/reference/survey_reference.py computes every number
# they report from the same answers by other means (exact fractions,
# statistics.stdev, Student's t from the closed-form distribution instead of
# GSL), checks its own t quantiles against the published table, and prints
# one query that compares the aggregates with its values, a row per case and
# metric.  run_tap.sh copies test/reference beside the tests.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;

my $script = "$ENV{TESTDIR}/reference/survey_reference.py";
ok(-f $script, 'the reference script is beside the tests');

# the script exits non-zero if its t quantiles disagree with the table
my ($stdout, $stderr);
my $ran = IPC::Run::run([ 'python3', $script, '--sql' ], '>', \$stdout, '2>', \$stderr);
ok($ran, 'the reference script ran and its t quantiles match the published table') or diag($stderr);
my ($cases) = ($stdout // '') =~ /^-- cases: (\d+)$/m;
cmp_ok($cases // 0, '>=', 50, 'the reference script made its cases');

my $node = PostgreSQL::Test::Cluster->new('survey');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION post_purchase');

my @rows = split /\n/, $node->safe_psql('postgres', $stdout);
is(scalar @rows, $cases, 'one comparison per case and metric');
for my $row (@rows)
{
	my ($name, $agrees, $detail) = split /\|/, $row, 3;
	ok($agrees eq 't', "$name agrees with the reference") or diag($detail);
}

$node->stop;
done_testing();
