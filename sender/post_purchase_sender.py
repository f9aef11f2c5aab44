#!/usr/bin/python3
"""post_purchase_sender: deliver the messages of post_purchase's outbox.

A small service for a shop: it connects as a member of the role
post_purchase_sender, LISTENs on post_purchase_outbox (and claims every
poll_interval anyway, since notifications sent while it is away are lost),
claims batches with post_purchase.outbox_claim(), delivers each message by
SMTP or by HTTP POST, and then, per message, acknowledges it and records a
'delivered' event, or calls outbox_fail() with the reason (and records
'bounced' when the mail server refused the recipient for good).  Retries,
backoff and dead letters are the extension's (outbox_fail()).

Receivers deduplicate: delivery is at least once.  An email's Message-ID and
a webhook's Idempotency-Key header are derived from the outbox id, which is
stable across retries.

Configuration: a config file (--config, or $PP_SENDER_CONFIG, or
/etc/post-purchase-sender/sender.conf when it exists), then environment
variables PP_SENDER_<SECTION>_<KEY>, which win.  See sender/README.md and
sender/sender.conf.example.

Only Python's standard library and psycopg 3 (Debian's python3-psycopg).
"""

import argparse
import configparser
import email.message
import email.policy
import email.utils
import errno
import fcntl
import json
import logging
import os
import re
import select
import signal
import smtplib
import socket
import ssl
import string
import sys
import time
import urllib.error
import urllib.request

try:
    import psycopg
    from psycopg.rows import dict_row
except ImportError:  # pragma: no cover - a packaging problem, said clearly
    sys.stderr.write("post_purchase_sender: needs psycopg 3 (Debian: apt-get install python3-psycopg)\n")
    sys.exit(69)

VERSION = "1.1"
# sysexits.h: a configuration error; the systemd unit does not restart on it
EX_CONFIG = 78
DEFAULT_CONFIG = "/etc/post-purchase-sender/sender.conf"

# Every setting, with its default.  A key not listed here is a typo: the
# sender refuses to start rather than ignore it.  Channels and templates are
# open-ended sections, checked on their own.
DEFAULTS = {
    "database": {
        # a libpq connection string; PGHOST, PGUSER, PGPASSWORD... apply as usual
        "conninfo": "",
    },
    "sender": {
        "name": "",               # in logs and application_name; default host:pid
        "batch_size": "100",
        "visibility": "300",      # seconds a claim hides its messages from other senders
        "poll_interval": "60",    # seconds between claims when no notification comes
        "reconnect_max": "60",    # longest wait (s) between attempts to reach the database
        "failure_pause_max": "60",  # longest pause (s) after a batch whose server was down
    },
    "smtp": {
        "host": "localhost",
        "port": "25",
        "security": "none",       # none | starttls | ssl
        "user": "",
        "password": "",
        "timeout": "30",
        "from": "",               # required for email: the From header and envelope sender
        "message_id_domain": "",  # default: the domain of "from"
    },
    "webhook": {
        "url": "",                # where webhook messages are POSTed
        "timeout": "10",
        # url_<channel> = ...: POST that channel's messages elsewhere (an SMS gateway, say)
    },
}
# channel -> transport; a channel missing here cannot be delivered: its
# messages are failed with a reason that says so
DEFAULT_CHANNELS = {"email": "smtp", "webhook": "webhook"}
TRANSPORTS = ("smtp", "webhook", "fail")
ENV_PREFIX = "PP_SENDER_"

log = logging.getLogger("post_purchase_sender")


class ConfigError(Exception):
    pass


class DeliveryError(Exception):
    """A message was not delivered.

    bounce: the receiving server refused it for good (an SMTP 5xx reply to
    RCPT or DATA): recorded as a 'bounced' event as well.
    server_down: the server could not be used at all (unreachable, login
    refused): the rest of the batch on that transport fails with the same
    reason without trying again, and the sender pauses before its next claim.
    """

    def __init__(self, reason, bounce=False, server_down=False):
        super().__init__(reason)
        self.reason = reason
        self.bounce = bounce
        self.server_down = server_down


# ---------------------------------------------------------------- config

class Config:
    def __init__(self, path, environ):
        self.sections = {s: dict(v) for s, v in DEFAULTS.items()}
        self.channels = dict(DEFAULT_CHANNELS)
        self.templates = {}
        self.path = path
        if path:
            self._read_file(path)
        self._read_env(environ)
        self._check()

    def _read_file(self, path):
        # no interpolation: "%" is common in subjects ("15% off")
        parser = configparser.ConfigParser(interpolation=None)
        try:
            with open(path, encoding="utf-8") as f:
                parser.read_file(f)
        except OSError as e:
            raise ConfigError(f"cannot read config file {path}: {e.strerror}")
        except configparser.Error as e:
            raise ConfigError(f"config file {path}: {e}".replace("\n", " "))
        for section in parser.sections():
            items = dict(parser.items(section))
            if section in self.sections:
                for key, value in items.items():
                    self._set(section, key, value, f"{path} [{section}]")
            elif section == "channels":
                for key, value in items.items():
                    self.channels[key] = value.strip()
            elif section.startswith("template "):
                mtype = section[len("template "):].strip()
                unknown = set(items) - {"subject", "body"}
                if unknown:
                    raise ConfigError(f"{path} [{section}]: unknown key {sorted(unknown)[0]} (a template has subject and body)")
                self.templates[mtype] = items
            else:
                raise ConfigError(f"{path}: unknown section [{section}] (sections: database, sender, smtp, "
                                  "webhook, channels, template <message type>)")

    def _set(self, section, key, value, where):
        if key not in self.sections[section] and not (section == "webhook" and key.startswith("url_")):
            raise ConfigError(f"{where}: unknown key {key}")
        self.sections[section][key] = value.strip()

    def _read_env(self, environ):
        for name, value in sorted(environ.items()):
            if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
                continue
            rest = name[len(ENV_PREFIX):].lower()
            section, _, key = rest.partition("_")
            if section == "channels" and key:
                self.channels[key] = value.strip()
            elif section in self.sections and key:
                self._set(section, key, value, f"environment variable {name}")
            else:
                raise ConfigError(f"environment variable {name}: unknown setting")

    def get(self, section, key):
        return self.sections[section][key]

    def number(self, section, key, kind=float, low=None, high=None):
        raw = self.get(section, key)
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigError(f"[{section}] {key} must be a number, not {raw!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise ConfigError(f"[{section}] {key} must be between {low} and {high}, not {raw}")
        return value

    def _check(self):
        self.batch_size = self.number("sender", "batch_size", int, 1, 10000)
        self.visibility = self.number("sender", "visibility", float, 1, 86400 * 7)
        self.poll_interval = self.number("sender", "poll_interval", float, 0.05, 86400)
        self.reconnect_max = self.number("sender", "reconnect_max", float, 0.1, 3600)
        self.failure_pause_max = self.number("sender", "failure_pause_max", float, 0, 3600)
        self.smtp_port = self.number("smtp", "port", int, 1, 65535)
        self.smtp_timeout = self.number("smtp", "timeout", float, 0.1, 600)
        self.webhook_timeout = self.number("webhook", "timeout", float, 0.1, 600)
        if self.get("smtp", "security") not in ("none", "starttls", "ssl"):
            raise ConfigError(f"[smtp] security must be none, starttls or ssl, not {self.get('smtp', 'security')!r}")
        # a send must end before its claim does, or another sender would send it too
        longest = max(self.smtp_timeout, self.webhook_timeout)
        if self.visibility < 2 * longest:
            raise ConfigError(f"[sender] visibility ({self.visibility:g} s) must be at least twice the longest "
                              f"send timeout ({longest:g} s): a send must end before its claim does")
        for channel, transport in self.channels.items():
            if transport not in TRANSPORTS:
                raise ConfigError(f"[channels] {channel} = {transport!r}: the transports are smtp, webhook and fail")
        if "smtp" in self.channels.values():
            sender = self.get("smtp", "from")
            if not sender:
                raise ConfigError("[smtp] from is required to send email (e.g. from = Shop <shop@example.com>)")
            self.from_addr = email.utils.parseaddr(sender)[1]
            if address_problem(self.from_addr):
                raise ConfigError(f"[smtp] from: {address_problem(self.from_addr)}")
            self.message_id_domain = self.get("smtp", "message_id_domain") or self.from_addr.rpartition("@")[2]
        for mtype, t in self.templates.items():
            for part in ("subject", "body"):
                if part in t:
                    try:
                        fields_of(t[part])
                    except ValueError as e:
                        raise ConfigError(f"[template {mtype}] {part}: {e}")
        self.name = self.get("sender", "name") or f"{socket.gethostname()}:{os.getpid()}"

    def webhook_url(self, channel):
        return self.sections["webhook"].get("url_" + channel) or self.get("webhook", "url")


# -------------------------------------------------------------- templates

class PayloadTemplate(string.Template):
    # ${order.amount}: a dotted path into the payload
    braceidpattern = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*"


def fields_of(text):
    """The placeholders of a template; ValueError if it is malformed."""
    t = PayloadTemplate(text)
    if not t.is_valid():
        raise ValueError("malformed placeholder (write ${field} or ${field.sub}, and $$ for a dollar sign)")
    return t.get_identifiers()


def as_text(value):
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


class Lookup:
    """The values a template sees: the payload's fields, and the message's own."""

    def __init__(self, message, which):
        self.message = message
        self.which = which

    def __getitem__(self, path):
        value = self.message["payload"]
        for part in path.split("."):
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            elif value is self.message["payload"] and part in MESSAGE_FIELDS:
                value = self.message[MESSAGE_FIELDS[part]]
                if value is None:
                    break
            else:
                value = None
                break
        if value is None:
            raise DeliveryError(f"payload has no field {path!r}, which the {self.which} template of "
                                f"message type {self.message['type']!r} needs")
        return as_text(value)


# besides the payload's fields, templates may name these
MESSAGE_FIELDS = {"message_id": "id", "customer_id": "aggregateid", "journey": "journey", "step": "step",
                  "variant": "variant", "address": "address"}


def render(message, templates):
    """Subject and body of an email, from the message type's template."""
    if not isinstance(message["payload"], dict):
        raise DeliveryError(f"the payload of message type {message['type']!r} is not a JSON object")
    t = templates.get(message["type"]) or templates.get("default") or {}
    which = "configured" if t else "default"
    lookup = Lookup(message, which)
    subject = PayloadTemplate(t.get("subject", "${subject}")).substitute(lookup)
    if "body" in t:
        body = PayloadTemplate(t["body"]).substitute(lookup)
    elif "body" in message["payload"]:
        body = lookup["body"]
    else:
        # no template: the payload's fields, one a line
        body = "".join(f"{k}: {as_text(v)}\n" for k, v in message["payload"].items() if k != "subject")
    # a header is one line
    subject = " ".join(subject.split())
    if not subject:
        raise DeliveryError(f"the subject of message type {message['type']!r} is empty")
    return subject, body


# ------------------------------------------------------------- transports

# What an address must look like before a mail server sees it: one @, a
# local part without spaces, quotes or brackets, a domain of dotted labels.
ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                     r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*")


def address_problem(address):
    if address is None or address == "":
        return "no address"
    # ASCII only: this sender does not speak SMTPUTF8
    if len(address) > 254 or not address.isascii() or not ADDRESS.fullmatch(address):
        return f"malformed email address {address!r}"
    return None


class Smtp:
    """One SMTP session per batch, opened when its first email comes."""

    def __init__(self, config):
        self.config = config
        self.conn = None
        self.down = None  # the reason, once the server could not be used in this batch

    def _open(self):
        c = self.config
        host, port = c.get("smtp", "host"), c.smtp_port
        where = f"smtp server {host}:{port}"
        try:
            if c.get("smtp", "security") == "ssl":
                conn = smtplib.SMTP_SSL(host, port, timeout=c.smtp_timeout, context=ssl.create_default_context())
            else:
                conn = smtplib.SMTP(host, port, timeout=c.smtp_timeout)
            if c.get("smtp", "security") == "starttls":
                conn.starttls(context=ssl.create_default_context())
        except (OSError, smtplib.SMTPException) as e:
            raise DeliveryError(f"{where} unreachable: {describe(e)}", server_down=True)
        if c.get("smtp", "user"):
            try:
                conn.login(c.get("smtp", "user"), c.get("smtp", "password"))
            except smtplib.SMTPAuthenticationError as e:
                close_quietly(conn)
                raise DeliveryError(f"{where} refused the login of {c.get('smtp', 'user')!r} "
                                    f"(wrong user or password?): {describe(e)}", server_down=True)
            except (OSError, smtplib.SMTPException) as e:
                close_quietly(conn)
                raise DeliveryError(f"{where}: login failed: {describe(e)}", server_down=True)
        return conn

    def send(self, message):
        c = self.config
        problem = address_problem(message["address"])
        if problem:
            raise DeliveryError(f"{problem} for customer {message['aggregateid']!r} on channel "
                                f"{message['channel']!r} (customer_channels)")
        subject, body = render(message, c.templates)
        m = email.message.EmailMessage(policy=email.policy.SMTP)
        try:
            m["From"] = c.get("smtp", "from")
            m["To"] = message["address"]
            m["Subject"] = subject
            m["Date"] = email.utils.formatdate(localtime=False)
            # stable across retries: a receiver drops a second copy
            m["Message-ID"] = f"<{message['id']}@{c.message_id_domain}>"
            m["X-Post-Purchase-Journey"] = f"{message['journey']}/{message['step']}"
            m.set_content(body)
        except (ValueError, TypeError) as e:
            raise DeliveryError(f"cannot build the email: {e}")
        if self.down:
            raise DeliveryError(self.down, server_down=True)
        if self.conn is None:
            try:
                self.conn = self._open()
            except DeliveryError as e:
                self.down = e.reason
                raise
        try:
            refused = self.conn.send_message(m, from_addr=c.from_addr, to_addrs=[message["address"]])
        except smtplib.SMTPRecipientsRefused as e:
            code, reply = next(iter(e.recipients.values()))
            raise DeliveryError(f"smtp recipient {message['address']} refused: {code} {as_str(reply)}",
                                bounce=500 <= code < 600)
        except smtplib.SMTPDataError as e:
            raise DeliveryError(f"smtp message refused: {e.smtp_code} {as_str(e.smtp_error)}",
                                bounce=500 <= e.smtp_code < 600)
        except smtplib.SMTPSenderRefused as e:
            raise DeliveryError(f"smtp sender {c.from_addr} refused: {e.smtp_code} {as_str(e.smtp_error)}")
        except (OSError, smtplib.SMTPException) as e:
            # the session is gone (disconnect, timeout): the next email opens another
            self.close()
            raise DeliveryError(f"smtp send failed: {describe(e)}")
        if refused:  # one recipient: refused, if at all, raised above
            raise DeliveryError(f"smtp recipient refused: {refused}")

    def close(self):
        if self.conn is not None:
            close_quietly(self.conn)
            self.conn = None


class NoRedirect(urllib.request.HTTPRedirectHandler):
    # a redirected POST would become a GET: a redirect is an error to see
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Webhook:
    def __init__(self, config):
        self.config = config
        self.opener = urllib.request.build_opener(NoRedirect)
        self.down = {}  # url -> reason, for this batch

    def send(self, message):
        url = self.config.webhook_url(message["channel"])
        if not url:
            raise DeliveryError(f"no webhook url for channel {message['channel']!r} "
                                "(set [webhook] url, or url_<channel>)")
        if url in self.down:
            raise DeliveryError(self.down[url], server_down=True)
        body = json.dumps({
            "id": str(message["id"]),
            "type": message["type"],
            "channel": message["channel"],
            "address": message["address"],
            "customer_id": message["aggregateid"],
            "journey": message["journey"],
            "step": message["step"],
            "variant": message["variant"],
            "created_at": message["created_at"].isoformat(),
            "attempt": message["attempts"],
            "payload": message["payload"],
        }, ensure_ascii=False).encode()
        req = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json",
            # stable across retries: a receiver drops a second copy
            "Idempotency-Key": str(message["id"]),
            "User-Agent": f"post_purchase_sender/{VERSION}",
        })
        try:
            with self.opener.open(req, timeout=self.config.webhook_timeout) as resp:
                resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read(200).decode("utf-8", "replace").strip()
            raise DeliveryError(f"webhook {url} answered {e.code} {e.reason}" + (f": {detail}" if detail else ""))
        except (urllib.error.URLError, OSError) as e:
            reason = f"webhook {url} unreachable: {describe(getattr(e, 'reason', e))}"
            self.down[url] = reason
            raise DeliveryError(reason, server_down=True)


def printable(text):
    """One log line per event: an address with a line break (a header
    injection attempt, say) is shown escaped."""
    if text is None or text.isprintable():
        return text
    return text.encode("unicode_escape").decode("ascii")


def describe(e):
    if isinstance(e, smtplib.SMTPResponseException):
        return f"{e.smtp_code} {as_str(e.smtp_error)}"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


def as_str(reply):
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def close_quietly(conn):
    try:
        conn.quit()
    except Exception:
        try:
            conn.close()
        except Exception:
            pass


# ---------------------------------------------------------------- the loop

class Sender:
    def __init__(self, config):
        self.config = config
        self.stopping = False
        self.conn = None
        self.notified = False
        self.failure_pause = 0.0
        # signals wake the waits through a pipe (signal.set_wakeup_fd)
        self.wake_r, self.wake_w = os.pipe()
        for fd in (self.wake_r, self.wake_w):
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)

    def _stop(self, signum, frame):
        # only a flag: the message being sent is finished and acknowledged
        # first; the waits return at once through the wakeup pipe
        if not self.stopping:
            log.info("%s received: stopping after the message in hand", signal.Signals(signum).name)
        self.stopping = True

    def sleep(self, seconds, fd=None):
        """Wait until seconds pass, a signal comes, or fd is readable."""
        deadline = time.monotonic() + seconds
        while not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            fds = [self.wake_r] + ([fd] if fd is not None else [])
            try:
                ready, _, _ = select.select(fds, [], [], left)
            except InterruptedError:
                continue
            if self.wake_r in ready:
                try:
                    while os.read(self.wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
            if fd is not None and fd in ready:
                return True
        return False

    def connect(self):
        c = self.config
        delay = 0.5
        while not self.stopping:
            conn = None
            try:
                conn = psycopg.connect(c.get("database", "conninfo"), autocommit=True,
                                       application_name=f"post_purchase_sender {c.name}"[:63])
                conn.add_notify_handler(self._on_notify)
                conn.execute("LISTEN post_purchase_outbox")
                row = conn.execute(
                    "SELECT current_user, current_database(),"
                    " pg_catalog.to_regprocedure('post_purchase.outbox_claim(integer, interval)') IS NOT NULL,"
                    " pg_catalog.pg_has_role('post_purchase_sender', 'USAGE')").fetchone()
                user, db, installed, member = row
                if not installed:
                    raise RuntimeError(f"database {db} has no post_purchase extension (outbox_claim is missing)")
                if not member:
                    raise RuntimeError(f"role {user} is not a member of post_purchase_sender "
                                       f"(GRANT post_purchase_sender TO {user})")
                log.info("connected to database %s as %s; listening on post_purchase_outbox "
                         "(batch %d, visibility %g s, poll every %g s)",
                         db, user, c.batch_size, c.visibility, c.poll_interval)
                self.conn = conn
                return True
            except (psycopg.Error, RuntimeError) as e:
                if conn is not None and not conn.closed:
                    conn.close()
                msg = " ".join(str(e).split())
                log.error("cannot use the database: %s; trying again in %g s", msg, delay)
                self.sleep(delay)
                delay = min(delay * 2, c.reconnect_max)
        return False

    def _on_notify(self, notify):
        self.notified = True

    def wait_for_messages(self, timeout):
        """Wait for a notification, the poll interval, or a signal."""
        pg = self.conn.pgconn
        deadline = time.monotonic() + timeout
        while not self.stopping and not self.notified:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self.sleep(left, self.conn.fileno()):
                pg.consume_input()
                while pg.notifies() is not None:
                    self.notified = True

    def claim(self):
        cur = self.conn.cursor(row_factory=dict_row)
        return cur.execute(
            "SELECT id, aggregateid, type, payload, channel, address, journey, step, variant, created_at, attempts"
            " FROM post_purchase.outbox_claim(%s, %s * interval '1 second')",
            (self.config.batch_size, self.config.visibility)).fetchall()

    def run(self):
        c = self.config
        while not self.stopping:
            if not self.connect():
                break
            try:
                while not self.stopping:
                    self.notified = False
                    start = time.monotonic()
                    batch = self.claim()
                    if batch:
                        self.deliver(batch, start + c.visibility)
                        if self.failure_pause > 0:
                            # a server that is down fails whatever is claimed:
                            # claim again later, not at once
                            log.info("pausing %g s before the next claim: a server was down", self.failure_pause)
                            self.sleep(self.failure_pause)
                            continue
                        if len(batch) == c.batch_size:
                            continue  # more may be waiting
                    self.wait_for_messages(c.poll_interval)
            except psycopg.OperationalError as e:
                # claimed messages not yet acknowledged come back when their
                # claim ends: nothing is lost, some may be sent twice
                log.error("lost the database connection: %s; reconnecting", " ".join(str(e).split()))
                self.sleep(1)
            finally:
                if self.conn is not None and not self.conn.closed:
                    self.conn.close()
                self.conn = None
        log.info("stopped")

    def deliver(self, batch, claim_ends):
        c = self.config
        smtp, webhook = Smtp(c), Webhook(c)
        counts = {"delivered": 0, "failed": 0, "bounced": 0}
        server_down = False
        started = time.monotonic()
        left = 0
        try:
            for i, m in enumerate(batch):
                # stop when asked, or before a send could outlast the claim
                # (another sender may take the message then): what is left
                # comes back when the claim ends
                if self.stopping or time.monotonic() + max(c.smtp_timeout, c.webhook_timeout) > claim_ends:
                    left = len(batch) - i
                    break
                transport = c.channels.get(m["channel"])
                try:
                    if transport == "smtp":
                        smtp.send(m)
                    elif transport == "webhook":
                        webhook.send(m)
                    elif transport == "fail":
                        raise DeliveryError(f"channel {m['channel']!r} is configured to fail ([channels] "
                                            f"{m['channel']} = fail)")
                    else:
                        raise DeliveryError(f"no transport for channel {m['channel']!r}: this sender delivers "
                                            f"{', '.join(sorted(k for k, v in c.channels.items() if v != 'fail'))} "
                                            f"(set [channels] {m['channel']} = smtp or webhook)")
                except psycopg.OperationalError:
                    raise
                except Exception as exc:  # noqa: BLE001
                    # a message that trips a bug here must not crash the
                    # sender: it would come back to every restart, a crash
                    # loop; failed, it ends as a dead letter
                    e = exc if isinstance(exc, DeliveryError) else \
                        DeliveryError(f"internal error of the sender: {type(exc).__name__}: {exc}")
                    if not isinstance(exc, DeliveryError):
                        log.exception("message %s: unexpected error", m["id"])
                    server_down = server_down or e.server_down
                    counts["failed"] += 1
                    counts["bounced"] += e.bounce
                    log.warning("message %s (%s %s/%s, %s to %s, attempt %d) not delivered: %s",
                                m["id"], m["type"], m["journey"], m["step"], m["channel"],
                                printable(m["address"]), m["attempts"], printable(e.reason))
                    self.report_failure(m, e)
                    continue
                counts["delivered"] += 1
                self.report_delivery(m)
        finally:
            smtp.close()
        if server_down:
            self.failure_pause = min(max(self.failure_pause * 2, 1.0), c.failure_pause_max)
        else:
            self.failure_pause = 0.0
        log.info("batch of %d: %d delivered, %d failed (%d bounced), %d left for a later claim, %.0f ms",
                 len(batch), counts["delivered"], counts["failed"], counts["bounced"], left,
                 (time.monotonic() - started) * 1000)

    def report_delivery(self, m):
        # the event and the acknowledgement commit together: acknowledged
        # messages are the delivered ones
        try:
            with self.conn.transaction():
                self.conn.execute("SELECT post_purchase.record_event(%s, 'delivered')", (m["id"],))
                self.conn.execute("SELECT post_purchase.outbox_ack(ARRAY[%s]::uuid[])", (m["id"],))
        except psycopg.OperationalError:
            raise
        except psycopg.Error as e:
            log.error("message %s was delivered but could not be acknowledged: %s", m["id"],
                      " ".join(str(e).split()))

    def report_failure(self, m, e):
        try:
            with self.conn.transaction():
                if e.bounce:
                    self.conn.execute("SELECT post_purchase.record_event(%s, 'bounced')", (m["id"],))
                self.conn.execute("SELECT post_purchase.outbox_fail(%s, %s)", (m["id"], e.reason[:2000]))
        except psycopg.OperationalError:
            raise
        except psycopg.Error as err:
            # e.g. acknowledged meanwhile by another sender whose claim came
            # after ours ended: nothing to fail any more
            log.error("message %s: outbox_fail failed: %s", m["id"], " ".join(str(err).split()))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Deliver post_purchase's outbox by SMTP and webhooks (see sender/README.md).")
    parser.add_argument("--config", help=f"config file (default: $PP_SENDER_CONFIG, else {DEFAULT_CONFIG} if it exists)")
    parser.add_argument("--check-config", action="store_true", help="read the configuration, report, and exit")
    args = parser.parse_args(argv)

    # under systemd the journal adds the time
    fmt = "%(levelname)s %(message)s" if os.environ.get("JOURNAL_STREAM") else \
        "%(asctime)s %(levelname)s %(message)s"
    logging.basicConfig(level=logging.INFO, format=fmt, stream=sys.stderr)

    path = args.config or os.environ.get(ENV_PREFIX + "CONFIG")
    if path is None and os.path.exists(DEFAULT_CONFIG):
        path = DEFAULT_CONFIG
    try:
        config = Config(path, os.environ)
    except ConfigError as e:
        log.error("configuration: %s", e)
        return EX_CONFIG
    if args.check_config:
        print(f"configuration ok: {path or '(no file)'}; channels: "
              + ", ".join(f"{k} -> {v}" for k, v in sorted(config.channels.items())))
        return 0
    log.info("post_purchase_sender %s (%s) starting; config %s", VERSION, config.name, path or "(none)")
    Sender(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
