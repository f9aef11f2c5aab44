#!/usr/bin/python3
"""The demo's delivery step (70_journeys.sql runs it with psql's \\!).

Starts an SMTP sink (aiosmtpd) on 127.0.0.1, runs post_purchase_sender
against the demo database until every email in the outbox is delivered (or
failed), stops it with SIGTERM, and shows what the SMTP server received.

Environment: the PG* variables of the demo's server (as superuser, to watch
the outbox), PP_SENDER (the sender to run: the installed one),
PP_DEMO_MAILER_PASSWORD (the password of the sender's login role, which
70_journeys.sql creates).
"""

import collections
import email
import email.policy
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import psycopg
from aiosmtpd.controller import Controller

logging.getLogger("mail.log").setLevel(logging.ERROR)

CONFIG = """\
[database]
conninfo = host={host} port={port} dbname={db} user=post_purchase_demo_mailer password={password}

[sender]
name = demo
batch_size = 50
visibility = 60
poll_interval = 1

[smtp]
host = 127.0.0.1
port = {smtp_port}
timeout = 10
from = CDNOW Demo Shop <shop@cdnow.example>

[channels]
email = smtp
# the demo has no SMS gateway: those messages fail, with the reason, and wait
# for a retry (or a sender with [channels] sms = webhook and url_sms)
sms = fail

[template thank_you]
subject = Thank you for your order ${{order.order_id}}
body = Hello,

    thank you for your order ${{order.order_id}} of ${{order.quantity}} CDs (${{order.amount}} USD).
    We are packing it now.

    CDNOW Demo Shop

[template loyalty_invite]
subject = ${{subject}}
body = You have ordered from us ${{orders}} times: join our loyalty program
    and get free shipping.
"""


class Sink:
    def __init__(self):
        self.lock = threading.Lock()
        self.messages = []
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server, session, envelope):
        m = email.message_from_bytes(envelope.content.replace(b"\r\n", b"\n"), policy=email.policy.default)
        with self.lock:
            self.messages.append(m)
        return "250 Message accepted for delivery"


def pending_email(db):
    # emails neither delivered nor failed yet
    return db.execute("SELECT count(*) FROM post_purchase.outbox WHERE channel = 'email'"
                      " AND acknowledged_at IS NULL AND dead_lettered_at IS NULL AND last_error IS NULL").fetchone()[0]


def main():
    sink = Sink()
    db = psycopg.connect(autocommit=True)
    work = tempfile.mkdtemp(prefix="pp_demo_sender_")
    config = os.path.join(work, "sender.conf")
    with open(config, "w") as f:
        f.write(CONFIG.format(host=os.environ.get("PGHOST", "localhost"), port=os.environ.get("PGPORT", "5432"),
                              db=os.environ["PGDATABASE"], password=os.environ["PP_DEMO_MAILER_PASSWORD"],
                              smtp_port=sink.port))
    env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD" and not k.startswith("PP_SENDER_")}
    logpath = os.path.join(work, "sender.log")
    sender = os.environ["PP_SENDER"]
    print(f"SMTP sink (aiosmtpd) on 127.0.0.1:{sink.port}; sender: {sender}")
    t0 = time.monotonic()
    with open(logpath, "w") as log:
        proc = subprocess.Popen([sender, "--config", config], stdout=log, stderr=subprocess.STDOUT, env=env)
        # bounded: a minute at most
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and pending_email(db) > 0:
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        proc.send_signal(signal.SIGTERM)
        try:
            status = proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            status = "killed: it did not stop within 20 s"
    sink.controller.stop()
    with open(logpath) as f:
        lines = f.read().splitlines()
    shutil.rmtree(work, ignore_errors=True)

    print(f"the sender ran {elapsed:.1f} s, stopped by SIGTERM (exit status {status}); its log:")
    # the batch lines, and of the failures one per reason
    reasons = collections.Counter()
    for line in lines:
        if " not delivered: " in line:
            reasons[line.split(" not delivered: ", 1)[1]] += 1
        else:
            print("  " + line.split(" ", 2)[2])
    for reason, n in reasons.items():
        print(f"  ({n} messages not delivered: {reason})")

    print()
    print(f"== What the SMTP server received: {len(sink.messages)} messages ==")
    ids = {str(r[0]) for r in db.execute("SELECT id FROM post_purchase.outbox WHERE acknowledged_at IS NOT NULL")}
    mids = [m["Message-ID"].strip("<>").split("@")[0] for m in sink.messages]
    print(f"Message-IDs that are acknowledged outbox ids: {sum(i in ids for i in mids)} of {len(mids)}, "
          f"distinct: {len(set(mids))}")
    for subject, n in collections.Counter(
            " ".join(w for w in m["Subject"].split() if not w.isdigit()) for m in sink.messages).most_common():
        print(f"  {n:4d}  Subject: {subject} ...")
    if sink.messages:
        first = min(sink.messages, key=lambda m: m["To"])
        print()
        print("One of them, as the server got it:")
        print("  " + first.as_string().replace("\n", "\n  ").rstrip())
    return 0 if status == 0 and sink.messages else 1


if __name__ == "__main__":
    sys.exit(main())
