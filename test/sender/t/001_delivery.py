# Every fired message arrives: orders fire an email and a webhook journey
# (the database's worker fires them as the orders commit); the sender, woken
# by LISTEN (its poll interval is a minute), delivers each email to aiosmtpd
# with From, To, Subject, body and a Message-ID of the outbox id, and each
# webhook to http.server with an Idempotency-Key of the outbox id;
# acknowledges them and records 'delivered'.  With notifications off it
# still finds messages by polling.  SIGTERM mid-batch stops it at once,
# leaving nothing claimed past its visibility window.  Two senders at once
# partition the outbox: each message reaches the receivers once.
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sender_test import (diag, HttpSink, Sender, SmtpSink, add_journey, cmp_ok, create_shop, is_, note, ok,  # noqa: E402
                         outbox, place_orders, run_tests, scalar, wait_fired, wait_settled, wait_until)

TEMPLATE = {"template order_mail": {
    "subject": "Your order ${order.order_id}",
    "body": "Hello customer ${customer_id},\nthank you for order ${order.order_id} (${order.amount}).\n"
            "Journey ${journey}, 100% real.",
}}


def main():
    db = create_shop("sender_delivery")
    add_journey(db, "mail", "email", "order_mail", {"subject": "unused", "order": "{{order}}"})
    add_journey(db, "hook", "webhook", "order_hook", {"order_id": "{{order.order_id}}", "kind": "thanks"})
    smtp, http = SmtpSink(), HttpSink()

    # --- every fired message arrives, woken by LISTEN
    sender = Sender("sender_delivery", smtp, http, sections=TEMPLATE).start()
    ok(wait_until(lambda: "listening on post_purchase_outbox" in sender.logtext(), 20),
       "the sender connects as mailer (a member of post_purchase_sender) and listens")
    t0 = time.monotonic()
    place_orders(db, 1, 40)
    ok(wait_fired(db, ["mail", "hook"], 80), "the worker fired 40 emails and 40 webhooks")
    ok(wait_settled(db, 30), "every message is acknowledged")
    elapsed = time.monotonic() - t0
    cmp_ok(elapsed, "<", 30, "delivered within seconds, far less than the 60 s poll interval: LISTEN woke the sender")
    mails = {str(m["id"]): m for m in outbox(db, "channel = 'email'")}
    hooks = {str(m["id"]): m for m in outbox(db, "channel = 'webhook'")}
    is_(sorted(smtp.ids()), sorted(mails), "the SMTP server received each email once, Message-ID <outbox id@domain>")
    is_(sorted(http.ids()), sorted(hooks), "the webhook received each message once, Idempotency-Key = outbox id")
    good = 0
    for m in smtp.messages:
        row = mails[m["Message-ID"].strip("<>").split("@")[0]]
        order = row["payload"]["order"]
        good += (m["Message-ID"] == f"<{row['id']}@shop.example>"
                 and m["From"] == "Test Shop <shop@shop.example>"
                 and m["To"] == row["address"] and m.envelope_to == [row["address"]]
                 and m.envelope_from == "shop@shop.example"
                 and m["Subject"] == f"Your order {order['order_id']}"
                 and m.get_content() == f"Hello customer {row['aggregateid']},\nthank you for order "
                                        f"{order['order_id']} ({order['amount']}).\nJourney mail, 100% real.\n")
    if good != 40:
        m = smtp.messages[0]
        diag(f"an email: {m.as_string()!r} {m.envelope_to} {m.envelope_from}")
    is_(good, 40, "each email: From, To (the message's address), Subject and body from the template and payload")
    good = 0
    for key, doc, ctype in http.posts:
        row = hooks[key]
        good += (doc["id"] == key and doc["payload"] == row["payload"] and doc["type"] == "order_hook"
                 and doc["customer_id"] == row["aggregateid"] and doc["journey"] == "hook"
                 and ctype == "application/json")
    if good != 40:
        diag(f"a POST: {http.posts[0]!r}; its row: {hooks[http.posts[0][0]]!r}")
    is_(good, 40, "each webhook POST: JSON with the message's id, type, customer and payload")
    is_(scalar(db, "SELECT count(*) FROM post_purchase.message_events WHERE event = 'delivered'"), 80,
        "a 'delivered' event for each message")
    is_(scalar(db, "SELECT count(DISTINCT outbox_id) FROM post_purchase.message_events"), 80,
        "... one per message")
    is_(scalar(db, "SELECT sum(delivered) FROM post_purchase.journey_stats WHERE journey IN ('mail', 'hook')"), 80,
        "journey_stats counts them delivered")
    is_(sender.delivered(), 80, "the batch log lines add up to 80 delivered")
    ok("ERROR" not in sender.logtext() and "WARNING" not in sender.logtext(), "no error or warning logged")

    # --- SIGTERM while idle (waiting on LISTEN): exits at once
    t0 = time.monotonic()
    is_(sender.stop(10), 0, "SIGTERM while waiting: exit status 0")
    cmp_ok(time.monotonic() - t0, "<", 3, "... within moments")
    ok("stopped" in sender.logtext(), "... and it logs that it stopped")

    # --- polling: notifications that never come (the trigger is off)
    sender = Sender("sender_delivery", smtp, http, sections=dict(TEMPLATE, sender={"poll_interval": "0.5"})).start()
    wait_until(lambda: "listening" in sender.logtext(), 20)
    db.execute("ALTER TABLE post_purchase.outbox DISABLE TRIGGER outbox_notify")
    place_orders(db, 101, 5)
    ok(wait_fired(db, ["mail", "hook"], 90), "the worker fired 10 more messages, without notifications")
    ok(wait_settled(db, 15), "the sender found them by polling and delivered them")
    is_(smtp.count() + http.count(), 90, "the receivers have all 90 messages")
    db.execute("ALTER TABLE post_purchase.outbox ENABLE TRIGGER outbox_notify")
    is_(sender.stop(10), 0, "SIGTERM: exit status 0")

    # --- SIGTERM mid-batch: the message in hand is finished and
    # acknowledged; the rest of the claim comes back when it ends
    smtp.delay = 0.1
    sender = Sender("sender_delivery", smtp, http, sections=dict(
        TEMPLATE, sender={"batch_size": "50", "visibility": "4"}, smtp={"timeout": "2"},
        webhook={"timeout": "2"})).start()
    wait_until(lambda: "listening" in sender.logtext(), 20)
    before = smtp.count()
    place_orders(db, 201, 30)
    ok(wait_until(lambda: smtp.count() >= before + 5, 20), "the sender is delivering a batch")
    t0 = time.monotonic()
    sender.signal(signal.SIGTERM)
    is_(sender.wait(10), 0, "SIGTERM mid-batch: exit status 0")
    cmp_ok(time.monotonic() - t0, "<", 3, "... within one send")
    pending = outbox(db, "acknowledged_at IS NULL")
    ok(len(pending) > 0, f"messages of the claim were left unsent ({len(pending)})")
    ok("left for a later claim" in sender.logtext(), "the batch line says how many were left")
    late = scalar(db, "SELECT count(*) FROM post_purchase.outbox WHERE acknowledged_at IS NULL"
                      " AND visible_at > now() + interval '4 seconds'")
    is_(late, 0, "nothing stays claimed longer than the visibility window (4 s)")
    is_(smtp.count() + http.count(), scalar(db, "SELECT count(*) FROM post_purchase.outbox WHERE acknowledged_at IS NOT NULL"),
        "what was sent was acknowledged before the exit: no duplicate to come")
    smtp.delay = 0
    sender = Sender("sender_delivery", smtp, http, sections=dict(TEMPLATE, sender={"poll_interval": "0.5"})).start()
    ok(wait_settled(db, 20), "a new sender delivers the rest once the claim's window ends")
    is_(sorted(smtp.ids() + http.ids()), sorted(str(m["id"]) for m in outbox(db)),
        "each of the 150 messages arrived exactly once")
    is_(sender.stop(10), 0, "SIGTERM: exit status 0")

    # --- two senders at once partition the outbox
    smtp.delay = 0.01
    http.delay = 0.01
    place_orders(db, 301, 100)
    ok(wait_fired(db, ["mail", "hook"], 350), "200 more messages fired while no sender runs")
    two = [Sender("sender_delivery", smtp, http, name=f"s{i}",
                  sections=dict(TEMPLATE, sender={"batch_size": "10", "poll_interval": "0.5"})) for i in (1, 2)]
    for s in two:
        s.start()
    ok(wait_settled(db, 60), "two senders deliver the backlog")
    counts = [s.delivered() for s in two]
    note(f"delivered per sender: {counts}")
    is_(sum(counts), 200, "together they delivered the 200 messages")
    ok(all(c > 0 for c in counts), "each sender delivered some of them")
    ids = smtp.ids() + http.ids()
    is_(len(ids), len(set(ids)), "no message reached a receiver twice: the claims partition the outbox")
    is_(len(set(ids)), 350, "every message arrived")
    for s in two:
        is_(s.stop(10), 0, f"sender {s.name} stops on SIGTERM")
    smtp.stop()
    http.stop()


run_tests(main)
