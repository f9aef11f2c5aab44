# Receivers that fail, and bad input.  A mail server that answers 451 once
# gets the message again; one that refuses a recipient with 550 bounces it
# (a 'bounced' event per attempt) and one that always answers 451 exhausts
# it: both end as dead letters with the reply in last_error; the same for a
# webhook receiver answering 503 once or 500 always.  Then: a malformed or
# missing address, a payload without a field its template needs, a channel
# the sender has no transport for, a wrong database password, a wrong SMTP
# password and an unreachable SMTP server each give a clear log line and an
# outbox_fail() with the reason (or, for the database, a retry), never an
# exit and never a lost message; a bad configuration is refused at start
# with exit status 78.
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sender_test import (HttpSink, Sender, SmtpSink, add_journey, cmp_ok, create_shop, free_port, is_,  # noqa: E402
                         ok, outbox, place_orders, run_tests, scalar, wait_fired, wait_settled, wait_until)

DB = "sender_failures"
FAST = {"sender": {"poll_interval": "0.3"}}


def customer_of(address):
    return int(re.search(r"(\d+)@", address).group(1))


def errors(db, journey):
    """last_error of the journey's messages, by customer."""
    return {int(m["aggregateid"]): m for m in outbox(db, f"journey = '{journey}'")}


def main():
    db = create_shop(DB)
    # fast retries: 3 claims, 0.2 s doubled, at most 1 s (retried messages
    # are found by polling: a failure sends no notification)
    db.execute("UPDATE post_purchase.settings SET value = '3' WHERE name = 'outbox_max_attempts'")
    db.execute("UPDATE post_purchase.settings SET value = '200 milliseconds' WHERE name = 'outbox_retry_backoff'")
    db.execute("UPDATE post_purchase.settings SET value = '1 second' WHERE name = 'outbox_retry_backoff_max'")
    add_journey(db, "mail", "email", "mail", {"subject": "Thanks for order {{order.order_id}}"})
    add_journey(db, "hook", "webhook", "hook", {"order": "{{order}}"})

    # --- receivers that fail some deliveries
    seen = set()

    def smtp_decide(address, message):
        kind = address.split("@")[0].rstrip("0123456789")
        if kind == "busy":
            return "451 4.3.0 mailbox busy, try later"
        if kind == "flaky" and message["Message-ID"] not in seen:
            seen.add(message["Message-ID"])
            return "451 4.7.1 greylisted, try again"
        return None

    def smtp_rcpt(address):
        return "550 5.1.1 no such user" if address.startswith("gone") else None

    def http_decide(key, doc):
        i = int(doc["customer_id"])
        if i % 10 == 5:
            return 500
        if i % 10 == 4 and key not in seen:
            seen.add(key)
            return 503
        return None

    kinds = {1: "flaky", 2: "gone", 3: "busy"}
    smtp, http = SmtpSink(decide=smtp_decide, rcpt=smtp_rcpt), HttpSink(decide=http_decide)
    sender = Sender(DB, smtp, http, sections=FAST).start()
    place_orders(db, 1, 30, address=lambda i: f"{kinds.get(i % 10, 'customer')}{i}@example.com")
    ok(wait_fired(db, ["mail", "hook"], 60), "30 emails and 30 webhooks fired")
    ok(wait_settled(db, 40), "every message is acknowledged or dead-lettered")
    mails, hooks = errors(db, "mail"), errors(db, "hook")
    accepted = {}
    for m in smtp.messages:
        accepted.setdefault(customer_of(m["To"]), []).append(m)
    attempts = {}
    for mid, reply in smtp.attempts:
        attempts[mid] = attempts.get(mid, 0) + 1

    flaky = [i for i in mails if i % 10 == 1]
    ok(all(mails[i]["acknowledged_at"] and len(accepted.get(i, [])) == 1 for i in flaky),
       "greylisted once (451): sent again, accepted, acknowledged")
    ok(all(mails[i]["attempts"] == 2 and attempts[f"<{mails[i]['id']}@shop.example>"] == 2 for i in flaky),
       "... on the second claim, the server saw it twice")
    gone = [i for i in mails if i % 10 == 2]
    ok(all(mails[i]["dead_lettered_at"] and not mails[i]["acknowledged_at"] and mails[i]["attempts"] == 3
           and "550 5.1.1 no such user" in mails[i]["last_error"] for i in gone),
       "recipient refused (550): dead-lettered after 3 claims, the reply in last_error")
    is_(scalar(db, "SELECT count(*) FROM post_purchase.message_events WHERE event = 'bounced'"), 3 * len(gone),
        "a 'bounced' event for each refused attempt")
    is_(scalar(db, "SELECT count(DISTINCT outbox_id) FROM post_purchase.message_events WHERE event = 'bounced'"),
        len(gone), "... of the refused messages only")
    busy = [i for i in mails if i % 10 == 3]
    ok(all(mails[i]["dead_lettered_at"] and "451 4.3.0 mailbox busy" in mails[i]["last_error"] for i in busy),
       "always 451: dead-lettered with the reply, no bounce")
    ok(not any(i in accepted for i in gone + busy), "the SMTP server accepted none of those")
    once = [i for i in hooks if i % 10 == 4]
    ok(all(hooks[i]["acknowledged_at"] and hooks[i]["attempts"] == 2 for i in once),
       "webhook 503 once: sent again and acknowledged")
    never = [i for i in hooks if i % 10 == 5]
    ok(all(hooks[i]["dead_lettered_at"] and "answered 500" in hooks[i]["last_error"]
           and "receiver says no" in hooks[i]["last_error"] for i in never),
       "webhook 500 always: dead-lettered, status and reply body in last_error")
    good = [m for m in outbox(db) if m["acknowledged_at"]]
    is_(len(good), 60 - len(gone) - len(busy) - len(never), "every other message was acknowledged")
    received = sorted(smtp.ids() + http.ids())
    is_(received, sorted(str(m["id"]) for m in good), "each acknowledged message reached its receiver once")
    is_(scalar(db, "SELECT count(*) FROM post_purchase.message_events WHERE event = 'delivered'"), len(good),
        "a 'delivered' event for each")
    is_(scalar(db, "SELECT count(*) FROM post_purchase.outbox WHERE dead_lettered_at IS NOT NULL"),
        len(gone) + len(busy) + len(never), "the dead letters are recorded, none lost")
    ok(re.search(r"WARNING message \S+ \(mail mail/now, email to gone2@example.com, attempt 3\) not delivered: "
                 r"smtp recipient gone2@example.com refused: 550", sender.logtext()),
       "each failure has a log line: the message, where it went, the attempt and the reason")
    ok(sender.alive(), "the sender is still running")
    is_(sender.stop(), 0, "and stops on SIGTERM")
    db.execute("SELECT post_purchase.disable_journey('hook')")

    # --- bad input: each fails with its reason, the rest of the batch goes
    smtp.decide = smtp.rcpt = None
    add_journey(db, "coupon", "email", "coupon_mail", {"subject": "A gift for you"})
    add_journey(db, "nosubject", "email", "bare", {"text": "no subject here"})
    add_journey(db, "texts", "sms", "text", {"text": "thanks"})
    sections = dict(FAST, **{"template coupon_mail": {"body": "Your code: ${coupon.code}"}})
    sender = Sender(DB, smtp, http, sections=sections).start()
    before = smtp.count()
    addresses = {101: "not an address", 102: None, 103: "bad@@example.com", 104: "a@b..c",
                 105: "inject@example.com\r\nBcc: x@example.com"}
    place_orders(db, 101, 6, address=lambda i: addresses.get(i, f"fine{i}@example.com"))
    for i in range(101, 107):
        db.execute("INSERT INTO post_purchase.customer_channels VALUES (%s, 'sms', '+15550000', true, false)", (str(i),))
    # the sms step needs consent on sms: given after the orders, so fire it again
    place_orders_again = [f"INSERT INTO orders VALUES ({1000 + i}, {i}, now(), 1)" for i in range(101, 107)]
    for q in place_orders_again:
        db.execute(q)
    ok(wait_until(lambda: scalar(db, "SELECT count(*) FROM post_purchase.outbox WHERE journey = 'texts'") >= 6, 30),
       "the bad messages fired")
    ok(wait_settled(db, 40), "and were settled: acknowledged or dead-lettered")
    mails = {}
    for m in outbox(db, "journey = 'mail' AND aggregateid::int > 100"):
        mails.setdefault(int(m["aggregateid"]), []).append(m)
    reasons = {
        101: "malformed email address 'not an address' for customer '101' on channel 'email'",
        102: "no address for customer '102' on channel 'email'",
        103: "malformed email address 'bad@@example.com'",
        104: "malformed email address 'a@b..c'",
        105: "malformed email address 'inject@example.com\\r\\nBcc: x@example.com'",
    }
    for i, reason in reasons.items():
        ok(all(m["dead_lettered_at"] and reason in m["last_error"] for m in mails[i]),
           f"address {addresses[i]!r}: outbox_fail with {reason!r}, dead-lettered after 3 claims")
    ok(all(m["acknowledged_at"] for m in mails[106]), "the good address in the same batches was delivered")
    ok(not any("Bcc" in str(m) and "x@example.com" in str(m.get("Bcc", "")) for m in smtp.messages),
       "no header was injected")
    coupon = outbox(db, "journey = 'coupon'")
    ok(coupon and all(m["dead_lettered_at"] and "payload has no field 'coupon.code', which the configured "
                      "template of message type 'coupon_mail' needs" in m["last_error"]
                      for m in coupon if (m["address"] or "").startswith("fine")),
       "a template field the payload lacks: outbox_fail naming the field and the message type")
    bare = outbox(db, "journey = 'nosubject' AND address LIKE 'fine%'")
    ok(bare and all(m["dead_lettered_at"] and "payload has no field 'subject', which the default template"
                    in m["last_error"] for m in bare),
       "no template and no subject in the payload: outbox_fail naming the subject")
    texts = outbox(db, "journey = 'texts'")
    ok(texts and all(m["dead_lettered_at"] and "no transport for channel 'sms': this sender delivers email, "
                     "webhook (set [channels] sms = smtp or webhook)" in m["last_error"] for m in texts),
       "a channel without a transport: outbox_fail saying what to configure")
    log = sender.logtext()
    ok("not delivered: malformed email address 'not an address'" in log
       and "not delivered: payload has no field 'coupon.code'" in log
       and "not delivered: no transport for channel 'sms'" in log, "each has its log line")
    ok(sender.alive() and "Traceback" not in log, "the sender is still running, nothing crashed")
    is_(scalar(db, "SELECT count(*) FROM post_purchase.outbox WHERE acknowledged_at IS NULL"
                   " AND dead_lettered_at IS NULL"), 0, "nothing is left in flight")
    is_(sender.stop(), 0, "SIGTERM: exit 0")
    for j in ("coupon", "nosubject", "texts"):
        db.execute("SELECT post_purchase.disable_journey(%s)", (j,))

    # --- a bad configuration is refused at start, clearly
    for name, sections, expect in [
        ("an unknown key", {"smtp": {"hots": "x"}}, "unknown key hots"),
        ("a malformed template", {"template x": {"body": "Dear ${customer"}}, "[template x] body: malformed placeholder"),
        ("a visibility shorter than two sends", {"sender": {"visibility": "5"}}, "must be at least twice the longest send timeout"),
        ("an unknown transport", {"channels": {"sms": "carrier pigeon"}}, "the transports are smtp, webhook and fail"),
        ("a From that is no address", {"smtp": {"from": "shop"}}, "[smtp] from: malformed email address 'shop'"),
    ]:
        s = Sender(DB, smtp, http, sections=sections)
        status, out = s.check_config()
        ok(status == 78 and expect in out, f"{name}: exit 78 and {expect!r}")
        s.start()
        is_(s.wait(10), 78, f"{name}: the service exits with 78 (the unit does not restart it)")
    s = Sender(DB, smtp, http, env={"PP_SENDER_SMTP_PORTT": "1"})
    status, out = s.check_config()
    ok(status == 78 and "environment variable PP_SENDER_SMTP_PORTT: unknown key portt" in out,
       "a mistyped environment variable: exit 78, named")

    # --- a wrong database password: logged, retried, nothing claimed
    place_orders(db, 201, 3)
    ok(wait_fired(db, ["mail"], 39), "3 more emails fired")
    s = Sender(DB, smtp, http, password="wrong", sections=FAST).start()
    ok(wait_until(lambda: len(re.findall("password authentication failed for user \"mailer\"", s.logtext())) >= 2, 15),
       "a wrong database password: a clear log line, and a retry")
    ok(s.alive(), "the sender keeps retrying (with backoff) instead of exiting")
    is_(scalar(db, "SELECT count(*) FROM post_purchase.outbox WHERE attempts > 0 AND aggregateid::int > 200"), 0,
        "nothing was claimed")
    is_(s.stop(), 0, "SIGTERM while retrying: exit 0")

    # --- a wrong SMTP password, then an unreachable SMTP server
    authed = SmtpSink(auth=("shop", "right"))
    s = Sender(DB, authed, http, sections=dict(FAST, smtp={"user": "shop", "password": "wrong"})).start()
    ok(wait_settled(db, 30), "the 3 emails are settled")
    new = outbox(db, "aggregateid::int > 200")
    ok(all(m["dead_lettered_at"] and "smtp server 127.0.0.1:%d refused the login of 'shop' (wrong user or "
           "password?): 535" % authed.port in m["last_error"] for m in new),
       "a wrong SMTP password: outbox_fail with the server's 535 reply")
    ok(authed.logins and not any(authed.logins), "the server saw the wrong password")
    ok("pausing" in s.logtext(), "the sender pauses before claiming again")
    ok(s.alive(), "and keeps running")
    is_(s.stop(), 0, "SIGTERM: exit 0")
    for m in new:
        db.execute("SELECT post_purchase.outbox_retry(%s)", (m["id"],))
    port = free_port()
    s = Sender(DB, smtp, http, sections=dict(FAST, smtp={"port": str(port)})).start()
    ok(wait_until(lambda: all("unreachable" in (m["last_error"] or "") and m["attempts"] >= 1
                              for m in outbox(db, "aggregateid::int > 200")), 20),
       "an unreachable SMTP server: outbox_fail with the reason")
    ok(f"smtp server 127.0.0.1:{port} unreachable: Connection refused" in s.logtext(),
       "... and a clear log line")
    ok(s.alive(), "the sender keeps running")
    is_(s.stop(), 0, "SIGTERM: exit 0")
    # the operator retries the dead letters once the server is back: nothing was lost
    wait_settled(db, 20)
    for m in outbox(db, "dead_lettered_at IS NOT NULL AND aggregateid::int > 200"):
        db.execute("SELECT post_purchase.outbox_retry(%s)", (m["id"],))
    s = Sender(DB, authed, http, sections=dict(FAST, smtp={"user": "shop", "password": "right"})).start()
    ok(wait_settled(db, 20), "with the right password and the server up")
    ok(all(m["acknowledged_at"] for m in outbox(db, "aggregateid::int > 200")),
       "every one of those messages is delivered in the end")
    is_(sorted(m["To"] for m in authed.messages), [f"customer{i}@example.com" for i in (201, 202, 203)],
        "the server received each once")
    is_(s.stop(), 0, "SIGTERM: exit 0")
    for sink in (smtp, http, authed):
        sink.stop()


run_tests(main)
