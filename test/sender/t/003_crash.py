# The sender killed with SIGKILL mid-batch, three times, and restarted each
# time: every message is delivered, at most one per kill twice (the one
# whose send had ended but whose acknowledgement had not committed), and
# receivers that deduplicate on Message-ID / Idempotency-Key end with each
# message exactly once.  Its database connection terminated mid-batch: it
# reconnects and goes on.
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sender_test import (HttpSink, Sender, SmtpSink, add_journey, cmp_ok, create_shop, is_, note, ok,  # noqa: E402
                         outbox, place_orders, run_tests, scalar, wait_fired, wait_settled, wait_until)

DB = "sender_crash"
# a short claim, so that a dead sender's messages come back quickly
CONF = {"sender": {"batch_size": "25", "visibility": "3", "poll_interval": "0.3"},
        "smtp": {"timeout": "1.5"}, "webhook": {"timeout": "1.5"}}


class Dedup:
    """What a receiver keeps when it drops second copies by their key."""

    def __init__(self):
        self.kept = {}
        self.dropped = 0
        self.same = True

    def add(self, key, content):
        if key in self.kept:
            self.dropped += 1
            self.same = self.same and self.kept[key] == content
        else:
            self.kept[key] = content


def in_flight(db):
    return scalar(db, "SELECT count(*) FROM post_purchase.outbox WHERE acknowledged_at IS NULL"
                      " AND attempts > 0 AND visible_at > now()")


def main():
    db = create_shop(DB)
    add_journey(db, "mail", "email", "mail", {"subject": "Order {{order.order_id}}", "order": "{{order}}"})
    add_journey(db, "hook", "webhook", "hook", {"order": "{{order}}"})
    smtp, http = SmtpSink(delay=0.01), HttpSink(delay=0.01)
    place_orders(db, 1, 150)
    ok(wait_fired(db, ["mail", "hook"], 300), "150 emails and 150 webhooks fired")
    total = 300

    kills = 0
    mid_batch = 0
    for round_ in (1, 2, 3):
        s = Sender(DB, smtp, http, sections=CONF, name=f"round{round_}").start()
        start = smtp.count() + http.count()
        ok(wait_until(lambda: smtp.count() + http.count() >= start + 30, 30),
           f"round {round_}: the sender is delivering")
        s.signal(signal.SIGKILL)
        s.wait(10)
        kills += 1
        held = in_flight(db)
        mid_batch += held > 0
        note(f"round {round_}: SIGKILL with {held} messages claimed and not acknowledged")
    cmp_ok(mid_batch, ">=", 2, "the kills landed mid-batch, with messages claimed and not acknowledged")
    ok(scalar(db, "SELECT count(*) FROM post_purchase.outbox WHERE acknowledged_at IS NULL") > 0,
       "messages are left to deliver after the kills")

    # the last sender loses its database connection mid-batch, and goes on
    s = Sender(DB, smtp, http, sections=CONF, name="last").start()
    start = smtp.count() + http.count()
    ok(wait_until(lambda: smtp.count() + http.count() >= start + 10, 30), "the last sender is delivering")
    is_(scalar(db, "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                   " WHERE application_name LIKE 'post_purchase_sender %%' AND datname = %s) t", (DB,)), 1,
        "its database connection is terminated")
    ok(wait_settled(db, 90), "every message is acknowledged in the end")
    ok("lost the database connection" in s.logtext() and s.logtext().count("connected to database") >= 2,
       "the sender logged the loss and reconnected")
    ok(s.alive(), "and is still running")
    is_(s.stop(), 0, "SIGTERM: exit 0")

    ids = sorted(str(m["id"]) for m in outbox(db))
    is_(len(ids), total, "300 messages in the outbox")
    raw = smtp.ids() + http.ids()
    is_(sorted(set(raw)), ids, "every message reached its receiver")
    duplicates = len(raw) - len(set(raw))
    note(f"{duplicates} messages arrived twice, {kills} kills and one lost connection")
    cmp_ok(duplicates, "<=", kills + 1, "at most one second copy per kill (and per lost connection)")

    mails, hooks = Dedup(), Dedup()
    for m in smtp.messages:
        # the copies differ only in their Date
        mails.add(m["Message-ID"], (m["To"], m["Subject"], m.get_content()))
    for key, doc, _ in http.posts:
        doc = dict(doc)
        doc.pop("attempt")
        hooks.add(key, doc)
    is_(len(mails.kept) + len(hooks.kept), total, "deduplicating on Message-ID / Idempotency-Key: each message once")
    is_(mails.dropped + hooks.dropped, duplicates, "... and the second copies are the ones dropped")
    ok(mails.same and hooks.same, "a second copy carries the same key and the same content")
    is_(sorted(k.strip("<>").split("@")[0] for k in mails.kept) + sorted(hooks.kept),
        sorted(str(m["id"]) for m in outbox(db, "channel = 'email'"))
        + sorted(str(m["id"]) for m in outbox(db, "channel = 'webhook'")),
        "the kept keys are the outbox ids")
    is_(scalar(db, "SELECT count(*) FROM post_purchase.message_events WHERE event = 'delivered'"), total,
        "one 'delivered' event per message, even for those sent twice (it commits with the acknowledgement)")
    cmp_ok(scalar(db, "SELECT count(*) FROM post_purchase.outbox WHERE attempts > 1"), ">", 0,
           "the killed senders' messages were claimed again")
    is_(scalar(db, "SELECT count(*) FROM post_purchase.outbox WHERE last_error IS NOT NULL"), 0,
        "none of it counted as a failure")
    smtp.stop()
    http.stop()


run_tests(main)
