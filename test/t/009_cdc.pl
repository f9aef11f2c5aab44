# The CDC path: Debezium's outbox event router reads post_purchase.outbox
# through logical decoding.  This test sets up what README.md ("Outbox",
# CDC) recommends: the publication post_purchase_outbox (the outbox only,
# publish = 'insert'), a pgoutput slot created by a replication role with
# the README's grants, and a wal2json slot for JSON consumers.  Journeys
# fire into the outbox in transactions whose commit order differs from the
# order of their message ids (a batch held open while another commits), one
# batch rolls back, senders claim and acknowledge, and outbox_purge()
# deletes the acknowledged messages.  Then the change streams must show:
# every committed message exactly once, none of the rolled-back one, with
# the columns EventRouter reads (id, aggregatetype, aggregateid, type,
# payload) equal to the outbox's, transaction by transaction in commit
# order; no claim, acknowledgement or purge in the pgoutput stream; in
# wal2json's, which has no publication, the purge only as deletes of the
# acknowledged ids (and nothing but inserts with its actions filter); and
# a consumed stream is not delivered again.
use strict;
use warnings;
# the payloads hold non-ASCII text: compare characters, not bytes
use utf8;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;

my $node = PostgreSQL::Test::Cluster->new('cdc');
$node->init;
# no post_purchase.databases: no worker runs, the test fires the journeys
# itself so it knows which transaction holds which message
$node->append_conf(
	'postgresql.conf', q{
shared_preload_libraries = 'post_purchase'
wal_level = logical
max_replication_slots = 4
max_wal_senders = 4
});
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE shop');
$node->safe_psql(
	'shop', q{
CREATE EXTENSION post_purchase;
CREATE TABLE orders (order_id bigint PRIMARY KEY, customer_id bigint NOT NULL,
					 ordered_at timestamptz NOT NULL, amount numeric NOT NULL);
SELECT post_purchase.track_orders('orders');
-- (the seed journey entered on the detractors segment first)
DELETE FROM post_purchase.journeys WHERE segment IS NOT NULL;
DELETE FROM post_purchase.segments;
UPDATE post_purchase.settings SET value = '00:00' WHERE name IN ('quiet_hours_start', 'quiet_hours_end');
UPDATE post_purchase.settings SET value = '0' WHERE name = 'frequency_cap_messages';
-- two message types, the second one second later, with a rendered payload
SELECT post_purchase.create_journey('cdc', 'every_order');
SELECT post_purchase.add_step('cdc', 'thanks', '0', 'webhook', 'order_thanks',
	payload => '{"text": "Thanks for order {{order.order_id}}", "total": "{{order.amount}}", "note": "quote \" backslash \\\\ é"}');
SELECT post_purchase.add_step('cdc', 'guide', '1 second', 'webhook', 'how_to_guide',
	payload => '{"order": "{{order.order_id}}"}');
SELECT post_purchase.enable_journey('cdc');
});

# README's setup.  The DBA (the table's owner) creates the publication; the
# connector's role needs REPLICATION, USAGE on the schema and SELECT on the
# outbox, and creates its slot.
$node->safe_psql(
	'shop', q{
CREATE PUBLICATION post_purchase_outbox FOR TABLE post_purchase.outbox WITH (publish = 'insert');
CREATE ROLE debezium LOGIN REPLICATION;
GRANT USAGE ON SCHEMA post_purchase TO debezium;
GRANT SELECT ON post_purchase.outbox TO debezium;
});
my @as_debezium = (extra_params => [ '-U', 'debezium' ]);
$node->safe_psql('shop', q{SELECT pg_create_logical_replication_slot('post_purchase_debezium', 'pgoutput')},
	@as_debezium);
# Since PostgreSQL 15.20 a REPLICATION role may only use the output plugins
# that output_plugin_libraries lists (pgoutput and test_decoding by
# default): wal2json must be added by a superuser (README).
if ($node->safe_psql('shop', q{SELECT count(*) FROM pg_settings WHERE name = 'output_plugin_libraries'}) eq '1')
{
	my ($ret, $out, $err) = $node->psql('shop',
		q{SELECT pg_create_logical_replication_slot('post_purchase_wal2json', 'wal2json')}, @as_debezium);
	like($err, qr/library "wal2json" may not be used as an output plugin/,
		'wal2json is refused to a replication role until output_plugin_libraries lists it');
	$node->safe_psql('shop', q{ALTER SYSTEM SET output_plugin_libraries = 'pgoutput', 'test_decoding', 'wal2json'});
	$node->reload;
	$node->poll_query_until('shop', q{SELECT current_setting('output_plugin_libraries') ~ 'wal2json'})
	  or die 'output_plugin_libraries was not reloaded';
}
$node->safe_psql('shop', q{SELECT pg_create_logical_replication_slot('post_purchase_wal2json', 'wal2json')},
	@as_debezium);
is( $node->safe_psql(
		'shop', q{SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication
				  WHERE pubname = 'post_purchase_outbox'}),
	't|f|f|f', 'the publication publishes inserts only');
is( $node->safe_psql(
		'shop', q{SELECT string_agg(schemaname || '.' || tablename, ',') FROM pg_publication_tables
				  WHERE pubname = 'post_purchase_outbox'}),
	'post_purchase.outbox', 'the publication holds the outbox only');

# the messages of each committed transaction, in commit order
my @expected_txns;
my $order_id = 0;

sub place_orders
{
	my (@customers) = @_;
	my $values = join(', ', map { $order_id++; "($order_id, $_, now(), " . (10 + $_) . ')' } @customers);
	$node->safe_psql('shop', "INSERT INTO orders VALUES $values");
}

sub ids_of
{
	my ($where) = @_;
	my $ids = $node->safe_psql('shop', "SELECT id FROM post_purchase.outbox WHERE $where ORDER BY id");
	return [ split /\n/, $ids ];
}

# A: five first thank-yous in one firing transaction
place_orders(1 .. 5);
is($node->safe_psql('shop', 'SELECT post_purchase.fire_due_steps(100)'), '5', 'A: five thank-yous fired');
push @expected_txns, ids_of(q{type = 'order_thanks'});

# a firing transaction that rolls back leaves nothing in the stream
place_orders(6);
my $rolled_back = $node->safe_psql(
	'shop', q{
BEGIN;
SELECT post_purchase.fire_due_steps(100) \g /dev/null
SELECT id FROM post_purchase.outbox WHERE aggregateid = '6';
ROLLBACK;
});
like($rolled_back, qr/^[0-9a-f-]{36}$/, 'a firing transaction that rolled back had a message');

# S: a firing batch held open (a worker mid-transaction) fires customer 6 first, the oldest id ...
my $held = $node->background_psql('shop');
$held->query_safe('BEGIN');
is($held->query_safe('SELECT post_purchase.fire_due_steps(1)'), '1', 'S: a held batch fires one step');
my $held_id = $held->query_safe(q{SELECT id FROM post_purchase.outbox WHERE aggregateid = '6'});
# ... B: while a later batch, whose ids are greater, commits first
place_orders(7, 8);
is($node->safe_psql('shop', 'SELECT post_purchase.fire_due_steps(100)'),
	'2', 'B: a concurrent batch fires the two others (the held step is locked, skipped)');
my $b_ids = ids_of(q{aggregateid IN ('7', '8') AND type = 'order_thanks'});
is( $node->safe_psql(
		'shop', "SELECT '$held_id'::uuid < ALL ('{" . join(',', @$b_ids) . "}'::uuid[])"),
	't', "the held batch's id sorts before the committed batch's ids");
$held->query_safe('COMMIT');
$held->quit;
push @expected_txns, $b_ids, [$held_id];

# G: the second step of all eight, due one second after each order
$node->poll_query_until('shop',
	q{SELECT count(*) = 8 FROM post_purchase.enrollments WHERE next_fire_at <= now() AND status = 'active'})
  or die 'the guide steps did not come due';
is($node->safe_psql('shop', 'SELECT post_purchase.fire_due_steps(100)'), '8', 'G: eight guides fired');
push @expected_txns, ids_of(q{type = 'how_to_guide'});

# the outbox as it is now: what the streams must carry for each message
my %row;
for my $line (
	split /\n/,
	$node->safe_psql(
		'shop', q{SELECT id, aggregatetype, aggregateid, type, payload::text FROM post_purchase.outbox}))
{
	utf8::decode($line);
	my ($id, @cols) = split /\|/, $line, 5;
	$row{$id} = { aggregatetype => $cols[0], aggregateid => $cols[1], type => $cols[2], payload => $cols[3] };
}
is(scalar(keys %row), 16, 'sixteen messages are in the outbox');

# senders claim everything and acknowledge the first batch; the retention
# is set to nothing, so the purge deletes those five
$node->safe_psql('shop', q{SELECT count(*) FROM post_purchase.outbox_claim(100, '5 minutes')});
my $acked = $expected_txns[0];
is( $node->safe_psql(
		'shop', "SELECT post_purchase.outbox_ack('{" . join(',', @$acked) . "}')"),
	'5', 'the first batch is acknowledged');
$node->safe_psql('shop', q{UPDATE post_purchase.settings SET value = '0 seconds' WHERE name = 'outbox_retention'});
is($node->safe_psql('shop', 'SELECT post_purchase.outbox_purge()'), '5', 'outbox_purge() deletes the five acknowledged');
is_deeply(ids_of('true'), [ sort(@{ $expected_txns[1] }, @{ $expected_txns[2] }, @{ $expected_txns[3] }) ],
	'the purge left the eleven unacknowledged');

# C: a message fired after the purge
place_orders(9);
is($node->safe_psql('shop', 'SELECT post_purchase.fire_due_steps(100)'), '1', 'C: a thank-you after the purge');
my $c_ids = ids_of(q{aggregateid = '9'});
push @expected_txns, $c_ids;
for my $line (
	split /\n/,
	$node->safe_psql(
		'shop',
		"SELECT id, aggregatetype, aggregateid, type, payload::text FROM post_purchase.outbox WHERE id = '$c_ids->[0]'"))
{
	utf8::decode($line);
	my ($id, @cols) = split /\|/, $line, 5;
	$row{$id} = { aggregatetype => $cols[0], aggregateid => $cols[1], type => $cols[2], payload => $cols[3] };
}
my $messages = 17;

# ---- pgoutput: the protocol Debezium reads (proto_version 1) ----

# one decoded message per row of pg_logical_slot_*_binary_changes
sub decode_pgoutput
{
	my ($bytes) = @_;
	my $pos = 0;
	my $take = sub {
		my ($n) = @_;
		my $s = substr($bytes, $pos, $n);
		$pos += $n;
		return $s;
	};
	my $cstring = sub {
		my $end = index($bytes, "\0", $pos);
		my $s = substr($bytes, $pos, $end - $pos);
		$pos = $end + 1;
		return $s;
	};
	my $tuple = sub {
		my $n = unpack('n', $take->(2));
		my @values;
		for (1 .. $n)
		{
			my $kind = $take->(1);
			if ($kind eq 't')
			{
				my $value = $take->(unpack('N', $take->(4)));
				utf8::decode($value);
				push @values, $value;
			}
			elsif ($kind eq 'n') { push @values, undef; }
			else { push @values, "<$kind>"; }
		}
		return \@values;
	};
	my $type = $take->(1);
	my %m = (type => $type);
	if ($type eq 'B')
	{
		@m{qw(final_lsn commit_time xid)} = unpack('Q> Q> N', $take->(20));
	}
	elsif ($type eq 'C')
	{
		@m{qw(flags commit_lsn end_lsn commit_time)} = unpack('C Q> Q> Q>', $take->(25));
	}
	elsif ($type eq 'R')
	{
		$m{relid} = unpack('N', $take->(4));
		$m{schema} = $cstring->();
		$m{table} = $cstring->();
		$m{replident} = $take->(1);
		my $n = unpack('n', $take->(2));
		for (1 .. $n)
		{
			my $flags = unpack('C', $take->(1));
			my $name = $cstring->();
			my ($typid, $typmod) = unpack('N N', $take->(8));
			push @{ $m{columns} }, { name => $name, key => $flags & 1, typid => $typid };
		}
	}
	elsif ($type eq 'I')
	{
		$m{relid} = unpack('N', $take->(4));
		$take->(1);    # 'N': a new tuple
		$m{values} = $tuple->();
	}
	# U, D, T and anything else: only the type matters, it must not be there
	return \%m;
}

sub read_pgoutput
{
	my ($function) = @_;
	my $hex = $node->safe_psql(
		'shop', qq{
SELECT encode(data, 'hex') FROM $function('post_purchase_debezium', NULL, NULL,
	'proto_version', '1', 'publication_names', 'post_purchase_outbox')},
		@as_debezium);
	return [ map { decode_pgoutput(pack('H*', $_)) } grep { length } split /\n/, $hex ];
}

# the stream's transactions: [commit_lsn, [message rows]], and what else it holds
sub pgoutput_transactions
{
	my ($stream) = @_;
	my (@txns, %relation, %other, $current);
	for my $m (@$stream)
	{
		if ($m->{type} eq 'B') { $current = []; }
		elsif ($m->{type} eq 'R') { $relation{ $m->{relid} } = $m; }
		elsif ($m->{type} eq 'I')
		{
			my $rel = $relation{ $m->{relid} } or die 'an insert before its relation';
			my %r;
			@r{ map { $_->{name} } @{ $rel->{columns} } } = @{ $m->{values} };
			$r{_table} = "$rel->{schema}.$rel->{table}";
			push @$current, \%r;
		}
		elsif ($m->{type} eq 'C') { push @txns, [ $m->{commit_lsn}, $current ] if @$current; }
		else { $other{ $m->{type} }++; }
	}
	return (\@txns, \%relation, \%other);
}

# Each stream transaction must hold exactly one expected transaction's
# messages, in commit order, with the outbox's column values.
sub check_transactions
{
	my ($label, $txns) = @_;
	is(scalar(@$txns), scalar(@expected_txns), "$label: one transaction per committed firing batch");
	my %seen;
	my ($columns_ok, $order_ok, $lsn_ok, $last_lsn) = (1, 1, 1, -1);
	for my $i (0 .. $#$txns)
	{
		my ($lsn, $rows) = @{ $txns->[$i] };
		$lsn_ok = 0 if defined $lsn && $lsn <= $last_lsn;
		$last_lsn = $lsn if defined $lsn;
		my @ids = sort map { $_->{id} } @$rows;
		$order_ok = 0 unless join(',', @ids) eq join(',', sort @{ $expected_txns[$i] // [] });
		for my $r (@$rows)
		{
			$seen{ $r->{id} }++;
			my $want = $row{ $r->{id} };
			next
			  if $want
			  && $r->{_table} eq 'post_purchase.outbox'
			  && $r->{aggregatetype} eq $want->{aggregatetype}
			  && $r->{aggregateid} eq $want->{aggregateid}
			  && $r->{type} eq $want->{type}
			  && $r->{payload} eq $want->{payload};
			diag("$label: got " . encode_json($r) . ', want ' . encode_json($want // {})) if $columns_ok;
			$columns_ok = 0;
		}
	}
	ok($order_ok, "$label: the transactions come in commit order (B before the held S, though S's id is older)");
	ok($lsn_ok, "$label: commit LSNs increase") if defined $txns->[0][0];
	is(scalar(keys %seen), $messages, "$label: all $messages committed messages");
	is(scalar(grep { $_ != 1 } values %seen), 0, "$label: each message once");
	ok(!exists $seen{$rolled_back}, "$label: not the rolled-back one");
	ok($columns_ok, "$label: id, aggregatetype, aggregateid, type and payload as in the outbox");
}

my $peeked = read_pgoutput('pg_logical_slot_peek_binary_changes');
my ($txns, $relations, $other) = pgoutput_transactions($peeked);
my ($outbox_rel) = grep { $_->{table} eq 'outbox' } values %$relations;
is(scalar(keys %$relations), 1, 'pgoutput: one relation, the outbox');
my %col = map { $_->{name} => $_ } @{ $outbox_rel->{columns} };
is( join(',', map { "$_:" . ($col{$_} ? $col{$_}{typid} : 'missing') } qw(id aggregatetype aggregateid type payload)),
	'id:2950,aggregatetype:25,aggregateid:25,type:25,payload:3802',
	"pgoutput: EventRouter's columns with their types (uuid, text, text, text, jsonb)");
ok($col{id}{key}, 'pgoutput: id is the key');
is_deeply($other, {}, 'pgoutput: no update, delete or truncate (claims, acknowledgements and the purge are not published)');
check_transactions('pgoutput', $txns);
# the template of the step, rendered for order 7 (amount 17), as jsonb prints it
my ($order_7) = grep { $_->{aggregateid} eq '7' && $_->{type} eq 'order_thanks' } map { @{ $_->[1] } } @$txns;
is($order_7->{payload}, '{"note": "quote \\" backslash \\\\ é", "text": "Thanks for order 7", "total": 17}',
	"pgoutput: order 7's thank-you payload, rendered");

# consuming gives the same stream, once: a restarted connector resumes after it
my $consumed = read_pgoutput('pg_logical_slot_get_binary_changes');
is_deeply($consumed, $peeked, 'pgoutput: consuming the slot gives what peeking gave');
my ($again) = pgoutput_transactions(read_pgoutput('pg_logical_slot_get_binary_changes'));
is(scalar(@$again), 0, 'pgoutput: a consumed message is not delivered again');

# ---- wal2json (format-version 2): one JSON object per change ----

sub read_wal2json
{
	my ($function, @options) = @_;
	my $out = $node->safe_psql(
		'shop', qq{
SELECT data FROM $function('post_purchase_wal2json', NULL, NULL,
	'format-version', '2', 'include-xids', '1', 'add-tables', 'post_purchase.outbox'
	@{[ join('', map { ", '$_'" } @options) ]})},
		@as_debezium);
	return [ map { decode_json($_) } grep { length } split /\n/, $out ];
}

# transactions with their inserts as rows, and their other changes
sub wal2json_transactions
{
	my ($stream) = @_;
	my (@txns, @deletes, %other, $current, $xid);
	for my $c (@$stream)
	{
		if ($c->{action} eq 'B') { ($current, $xid) = ([], $c->{xid}); }
		elsif ($c->{action} eq 'C') { push @txns, [ undef, $current ] if @$current; }
		elsif ($c->{action} eq 'I')
		{
			my %r = map { $_->{name} => $_->{value} } @{ $c->{columns} };
			$r{_table} = "$c->{schema}.$c->{table}";
			push @$current, \%r;
		}
		elsif ($c->{action} eq 'D')
		{
			push @deletes, { xid => $xid, identity => { map { $_->{name} => $_->{value} } @{ $c->{identity} } } };
		}
		else { $other{ $c->{action} }++; }
	}
	return (\@txns, \@deletes, \%other);
}

my ($w_txns, $w_deletes, $w_other) = wal2json_transactions(read_wal2json('pg_logical_slot_peek_changes'));
check_transactions('wal2json', $w_txns);
ok($w_other->{U}, 'wal2json (no publication): the claims and acknowledgements are updates');
is(scalar(@$w_deletes), 5, 'wal2json: the purge is five deletes');
is_deeply([ sort map { $_->{identity}{id} } @$w_deletes ], [ sort @$acked ], 'wal2json: of the acknowledged ids');
is(scalar(keys %{ { map { $_->{xid} => 1 } @$w_deletes } }), 1, 'wal2json: in one transaction, the purge');
is( join(',', sort map { keys %{ $_->{identity} } } @$w_deletes),
	join(',', ('id') x 5), 'wal2json: a delete carries only the key, never a message');
my ($i_txns, $i_deletes, $i_other) =
  wal2json_transactions(read_wal2json('pg_logical_slot_get_changes', 'actions', 'insert'));
check_transactions('wal2json actions=insert', $i_txns);
is(scalar(@$i_deletes) + scalar(keys %$i_other), 0, 'wal2json actions=insert: nothing but inserts');

$node->stop;
done_testing();
