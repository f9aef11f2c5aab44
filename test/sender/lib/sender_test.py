"""What the sender's tests share: TAP output for prove, the receivers
(aiosmtpd as the SMTP server, http.server as the webhook receiver, both on
127.0.0.1), a shop database whose journeys fire into the outbox, and
post_purchase_sender started as a process of its own.

The tests run inside pg_virtualenv (test/sender/run_sender_tests.sh): the
superuser's connection comes from PGHOST/PGPORT/PGUSER/PGPASSWORD, and the
server has the workers preloaded for the databases the tests create.
"""

import asyncio
import email
import email.policy
import json
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
import traceback
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

# aiosmtpd warns that AUTH without TLS is unsafe: on the loopback, for a test, it is what we want
warnings.filterwarnings("ignore", module="aiosmtpd")
logging.getLogger("mail.log").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message=".*login_data is deprecated.*")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
SENDER = os.environ.get("PP_SENDER", os.path.join(ROOT, "sender", "post_purchase_sender.py"))
PYTHON = "/usr/bin/python3"  # Debian's, which has psycopg and aiosmtpd
MAILER_PASSWORD = "mailer-secret"

# ------------------------------------------------------------------ TAP

_count = 0
_failed = 0


def ok(cond, name):
    global _count, _failed
    _count += 1
    if not cond:
        _failed += 1
    print(f"{'ok' if cond else 'not ok'} {_count} - {name}", flush=True)
    return bool(cond)


def is_(got, expected, name):
    good = ok(got == expected, name)
    if not good:
        diag(f"     got: {got!r}\nexpected: {expected!r}")
    return good


def cmp_ok(got, op, bound, name):
    good = ok({"<=": got <= bound, ">=": got >= bound, "<": got < bound, ">": got > bound}[op],
              f"{name} ({got} {op} {bound})")
    return good


def diag(text):
    for line in str(text).splitlines():
        print(f"# {line}", file=sys.stderr, flush=True)


def note(text):
    for line in str(text).splitlines():
        print(f"# {line}", flush=True)


def done_testing():
    print(f"1..{_count}", flush=True)
    sys.exit(1 if _failed else 0)


def run_tests(main):
    """Run main(); an exception is a failed test, not a silent stop."""
    try:
        main()
    except Exception:
        ok(False, "the test ran to its end without an exception")
        diag(traceback.format_exc())
    finally:
        for s in list(Senders):
            s.kill()
        for s in AllSenders:
            # a failure is explained by the senders' logs
            if _failed:
                diag(f"=== log of sender {s.name} ({s.logfile}), last 40 lines")
                diag("".join(s.logtext().splitlines(True)[-40:]))
            else:
                shutil.rmtree(s.dir, ignore_errors=True)
    done_testing()


def wait_until(cond, timeout, interval=0.1):
    """Poll cond() until it is true or timeout seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

# ------------------------------------------------------------ receivers


class SmtpSink:
    """An SMTP server on 127.0.0.1 that keeps what it accepted.

    decide(address, message) may return an SMTP reply to refuse a message
    ("451 ..." or "550 ..."); rcpt(address) may refuse a recipient.  Every
    attempt is kept in attempts, accepted messages in messages.
    """

    def __init__(self, delay=0.0, decide=None, rcpt=None, auth=None):
        self.delay = delay
        self.decide = decide
        self.rcpt = rcpt
        self.lock = threading.Lock()
        self.messages = []   # accepted: email.message.EmailMessage
        self.attempts = []   # (message_id, reply)
        self.logins = []
        self.port = free_port()
        kwargs = {}
        if auth is not None:
            user, password = auth

            def authenticator(server, session, envelope, mechanism, auth_data):
                good = auth_data.login == user.encode() and auth_data.password == password.encode()
                with self.lock:
                    self.logins.append(good)
                # handled=False: the server itself answers (235 or 535)
                return AuthResult(success=good, handled=False)
            kwargs = dict(authenticator=authenticator, auth_required=True, auth_require_tls=False)
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **kwargs)
        self.controller.start()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt(address) if self.rcpt else None
        if reply:
            with self.lock:
                self.attempts.append((None, reply))
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        # as a mailbox would keep it: lines end in \n
        m = email.message_from_bytes(envelope.content.replace(b"\r\n", b"\n"), policy=email.policy.default)
        m.envelope_to = list(envelope.rcpt_tos)
        m.envelope_from = envelope.mail_from
        reply = self.decide(envelope.rcpt_tos[0], m) if self.decide else None
        with self.lock:
            self.attempts.append((m["Message-ID"], reply or "250"))
            if not reply:
                self.messages.append(m)
        return reply or "250 Message accepted for delivery"

    def ids(self):
        """Outbox ids of the accepted messages, from their Message-ID (<id@domain>)."""
        with self.lock:
            return [m["Message-ID"].strip("<>").split("@")[0] for m in self.messages]

    def count(self):
        with self.lock:
            return len(self.messages)

    def stop(self):
        self.controller.stop()


class HttpSink:
    """A webhook receiver on 127.0.0.1: keeps each POST's Idempotency-Key and
    JSON body; decide(key, body) may return an HTTP status to refuse it."""

    def __init__(self, decide=None, delay=0.0):
        sink = self
        self.decide = decide
        self.delay = delay
        self.lock = threading.Lock()
        self.posts = []      # accepted: (key, body)
        self.attempts = []   # (key, status)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                key = self.headers.get("Idempotency-Key")
                if sink.delay:
                    time.sleep(sink.delay)
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = None
                status = (sink.decide(key, doc) if sink.decide else None) or 200
                with sink.lock:
                    sink.attempts.append((key, status))
                    if status < 300:
                        sink.posts.append((key, doc, self.headers.get("Content-Type")))
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                reply = b"ok" if status < 300 else b"receiver says no"
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def ids(self):
        with self.lock:
            return [k for k, _, _ in self.posts]

    def count(self):
        with self.lock:
            return len(self.posts)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

# ------------------------------------------------------------- database


def superuser(dbname="postgres"):
    return psycopg.connect(dbname=dbname, autocommit=True)


def create_shop(dbname):
    """A shop database with tracked orders and the sender's login role.

    The server lists dbname in post_purchase.databases (run_sender_tests.sh),
    so its worker fires due steps as the orders commit.
    """
    with superuser() as c:
        c.execute(f"DROP DATABASE IF EXISTS {dbname}")
        c.execute(f"CREATE DATABASE {dbname}")
    db = superuser(dbname)
    db.execute("CREATE EXTENSION post_purchase")
    db.execute("""
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'mailer') THEN
    CREATE ROLE mailer LOGIN IN ROLE post_purchase_sender;
  END IF;
END $$""")
    db.execute(f"ALTER ROLE mailer PASSWORD '{MAILER_PASSWORD}'")
    db.execute("""
CREATE TABLE orders (order_id bigint PRIMARY KEY, customer_id bigint NOT NULL,
                     ordered_at timestamptz NOT NULL, amount numeric NOT NULL)""")
    db.execute("SELECT post_purchase.track_orders('orders')")
    # no segment work per order, no quiet hours, no cap: this is about sending
    # (the seed journey entered on the detractors segment refers to it)
    db.execute("DELETE FROM post_purchase.journeys WHERE segment IS NOT NULL")
    db.execute("DELETE FROM post_purchase.segments")
    db.execute("UPDATE post_purchase.settings SET value = '00:00' WHERE name IN ('quiet_hours_start', 'quiet_hours_end')")
    db.execute("UPDATE post_purchase.settings SET value = '0' WHERE name = 'frequency_cap_messages'")
    # the worker may have found the database before the extension: wake it
    db.execute("SELECT post_purchase.wake_workers()")
    return db


def add_journey(db, name, channel, message_type, payload):
    db.execute("SELECT post_purchase.create_journey(%s, 'every_order')", (name,))
    db.execute("SELECT post_purchase.add_step(%s, 'now', '0', %s, %s, payload => %s::jsonb)",
               (name, channel, message_type, json.dumps(payload)))
    db.execute("SELECT post_purchase.enable_journey(%s)", (name,))


def place_orders(db, first, n, address=lambda i: f"customer{i}@example.com", channel="email"):
    """Orders first..first+n-1, each by a new customer with an address on
    channel, one transaction each (as a shop's checkouts are)."""
    for i in range(first, first + n):
        db.execute("INSERT INTO post_purchase.customer_channels (customer_id, channel, address, opted_in, preferred)"
                   " VALUES (%s, %s, %s, true, true)", (str(i), channel, address(i)))
        db.execute("INSERT INTO orders VALUES (%s, %s, now(), 10 + %s)", (i, i, i % 7))


def outbox(db, where="true"):
    cur = db.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute(f"SELECT * FROM post_purchase.outbox WHERE {where} ORDER BY created_at, id").fetchall()


def scalar(db, sql, args=()):
    return db.execute(sql, args).fetchone()[0]


def wait_fired(db, journeys, expected, timeout=30):
    """Until the workers have fired expected messages of these journeys."""
    return wait_until(lambda: scalar(db, "SELECT count(*) FROM post_purchase.outbox WHERE journey = ANY (%s)",
                                     (journeys,)) >= expected, timeout)


def wait_settled(db, timeout):
    """Until every message is acknowledged or dead-lettered."""
    return wait_until(lambda: scalar(db, "SELECT count(*) FROM post_purchase.outbox"
                                         " WHERE acknowledged_at IS NULL AND dead_lettered_at IS NULL") == 0,
                      timeout, 0.2)

# --------------------------------------------------------------- sender


Senders = set()     # running: killed when a test ends early
AllSenders = []     # every one: its log explains a failure


class Sender:
    """post_purchase_sender as a process, with a config file of its own and
    its log in a file."""

    def __init__(self, dbname, smtp=None, http=None, sections=None, env=None, password=MAILER_PASSWORD,
                 name="sender"):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="pp_sender_")
        AllSenders.append(self)
        self.config = os.path.join(self.dir, "sender.conf")
        self.logfile = os.path.join(self.dir, "sender.log")
        conf = {
            "database": {"conninfo": f"host={os.environ.get('PGHOST', 'localhost')} "
                                     f"port={os.environ.get('PGPORT', '5432')} dbname={dbname} "
                                     f"user=mailer password={password}"},
            "sender": {"name": name, "batch_size": "20", "visibility": "30", "poll_interval": "60",
                       "reconnect_max": "1", "failure_pause_max": "0.5"},
            "smtp": {"host": "127.0.0.1", "port": str(smtp.port if smtp else 1), "timeout": "5",
                     "from": "Test Shop <shop@shop.example>"},
            "webhook": {"url": http.url if http else "", "timeout": "5"},
        }
        for section, values in (sections or {}).items():
            conf.setdefault(section, {}).update(values)
        with open(self.config, "w") as f:
            for section, values in conf.items():
                f.write(f"[{section}]\n")
                for k, v in values.items():
                    v = str(v).replace("\n", "\n    ")
                    f.write(f"{k} = {v}\n")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PP_SENDER_")}
        # the sender's password is in its conninfo: libpq must not fall back
        # on the superuser's from the environment
        self.env.pop("PGPASSWORD", None)
        self.env.update(env or {})
        self.proc = None
        self.log = None

    def start(self):
        self.log = open(self.logfile, "a")
        self.proc = subprocess.Popen([PYTHON, SENDER, "--config", self.config], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=self.env)
        Senders.add(self)
        return self

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10):
        """SIGTERM; the exit status, or None if it did not exit in time."""
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.signal(signal.SIGTERM)
        status = self.wait(timeout)
        Senders.discard(self)
        return status

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)
        Senders.discard(self)

    def logtext(self):
        if not os.path.exists(self.logfile):
            return ""
        with open(self.logfile) as f:
            return f.read()

    def delivered(self):
        """Messages the batch log lines say were delivered."""
        import re
        return sum(int(n) for n in re.findall(r"batch of \d+: (\d+) delivered", self.logtext()))

    def check_config(self):
        r = subprocess.run([PYTHON, SENDER, "--config", self.config, "--check-config"], env=self.env,
                           capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout + r.stderr
