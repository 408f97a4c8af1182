"""Mail a run's PDF report with a short summary (the Table 3 numbers and the verdicts).

SMTP settings (`smtp_settings`) come from a TOML file (``--smtp-config PATH``, else
``$SCREEN_SMTP_CONFIG``, else ``~/.config/screen/smtp.toml`` when it exists), section
``[smtp]``, overridden by the environment::

    [smtp]                      environment
    host = "smtp.example.org"   SCREEN_SMTP_HOST
    port = 587                  SCREEN_SMTP_PORT       (default 587; 465 with ssl; 25 with none)
    security = "starttls"       SCREEN_SMTP_SECURITY   starttls (default), ssl or none
    user = "screening"          SCREEN_SMTP_USER       (no login when absent)
    from = "cryoem@example.org" SCREEN_SMTP_FROM       (default: user, else screen@<host name>)
    password_file = "~/.config/screen/smtp-password"   SCREEN_SMTP_PASSWORD_FILE
    cafile = "/etc/ssl/facility-ca.pem"                 SCREEN_SMTP_CAFILE (extra trusted CA)

TLS (starttls, ssl) checks the server's certificate against the system's CAs (plus ``cafile``).

The password comes only from ``$SCREEN_SMTP_PASSWORD`` or from ``password_file``, which must be
readable by its owner alone (mode 0600); a ``password`` key in the config file is refused, there
is no command-line option for it, and no message or error quotes it.
"""

from __future__ import annotations

import os
import smtplib
import socket
import ssl
import stat
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path

from screen.errors import ScreenError
from screen.store.layout import RunLayout

CONFIG_ENV = "SCREEN_SMTP_CONFIG"
DEFAULT_CONFIG = Path("~/.config/screen/smtp.toml")
SECURITY_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
TIMEOUT_S = 30.0
"""Seconds to wait for the SMTP server at each step."""


class MailError(ScreenError):
    """The SMTP settings are incomplete or wrong, or the server did not take the message."""


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send; ``password`` never shows in a repr."""

    host: str
    port: int
    security: str = "starttls"
    user: str | None = None
    sender: str = ""
    password: str | None = field(default=None, repr=False)
    cafile: str | None = None


def _read_config(path: Path) -> dict:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise MailError(f"{path}: cannot read the SMTP settings: {error}") from None
    section = data.get("smtp", {})
    if not isinstance(section, dict):
        raise MailError(f"{path}: [smtp] must be a table")
    if "password" in section:
        raise MailError(
            f"{path}: a password does not belong in the config file; put it in a file only you "
            "can read (chmod 600) named by password_file, or in $SCREEN_SMTP_PASSWORD"
        )
    return section


def _read_password_file(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise MailError(
                f"{path}: the password file is readable by others (mode {stat.S_IMODE(mode):o}); "
                f"run chmod 600 {path}"
            )
        return path.read_text().strip()
    except OSError as error:
        raise MailError(f"{path}: cannot read the password file: {error.strerror}") from None


def smtp_settings(
    config: Path | None = None, environ: Mapping[str, str] | None = None
) -> SmtpSettings:
    """SMTP settings from the config file and the environment (see the module docstring).

    Raises
    ------
    MailError
        If no host is given, a value is not valid, the config file holds a password, or the
        password file can be read by others.
    """
    env = os.environ if environ is None else environ
    path = config or (Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else None)
    if path is None and DEFAULT_CONFIG.expanduser().is_file():
        path = DEFAULT_CONFIG.expanduser()
    values = _read_config(Path(path).expanduser()) if path is not None else {}
    where = str(path) if path is not None else "the environment"

    def get(key: str) -> str | None:
        value = env.get(f"SCREEN_SMTP_{key.upper()}") or values.get(key)
        return None if value in (None, "") else str(value)

    host = get("host")
    if not host:
        raise MailError(
            "no SMTP server: set host in [smtp] of ~/.config/screen/smtp.toml (or "
            "--smtp-config FILE, $SCREEN_SMTP_CONFIG) or $SCREEN_SMTP_HOST"
        )
    security = (get("security") or "starttls").lower()
    if security not in SECURITY_PORTS:
        raise MailError(f"{where}: security must be starttls, ssl or none, not {security!r}")
    try:
        port = int(get("port") or SECURITY_PORTS[security])
    except ValueError:
        raise MailError(f"{where}: port must be a number, not {get('port')!r}") from None
    password = env.get("SCREEN_SMTP_PASSWORD") or None
    password_file = get("password_file")
    if password is None and password_file:
        password = _read_password_file(Path(password_file).expanduser())
    user = get("user")
    sender = get("from") or user or f"screen@{socket.getfqdn()}"
    cafile = get("cafile")
    return SmtpSettings(host, port, security, user, sender, password, cafile)


def recipients(text: str) -> list[str]:
    """Addresses from ``a@b,c@d`` (commas or spaces).

    Raises
    ------
    MailError
        If there is none or one is not an address.

    Examples
    --------
    >>> recipients("a@example.org, b@example.org")
    ['a@example.org', 'b@example.org']
    """
    addresses = [a for a in text.replace(",", " ").split() if a]
    bad = [a for a in addresses if "@" not in parseaddr(a)[1] or parseaddr(a)[1] != a]
    if not addresses or bad:
        raise MailError(f"not an e-mail address: {', '.join(bad) or repr(text)}")
    return addresses


def run_name(run_root: Path, provenance: Mapping) -> str:
    """How a run is named in the subject: its manifest's file name and results folder."""
    manifest = Path(str(provenance.get("manifest") or "")).name
    folder = Path(run_root).resolve().name
    return f"{manifest} -> {folder}" if manifest else folder


def _plain_body(context: Mapping) -> str:
    lines = [f"{context['title']}: {context['n_conditions']} condition(s)", ""]
    for c in context["conditions"]:
        lines.append(f"{c['name']}: {c['decision'].upper()} ({c['decision_reason']})")
        lines += [f"  - {v}" for v in c["verdicts"]]
    for table in context["tables"]:
        width = max(len(row["label"]) for row in table["rows"])
        lines += ["", " | ".join([" " * width, *table["conditions"]])]
        for row in table["rows"]:
            lines.append(" | ".join([row["label"].ljust(width), *row["values"]]))
    lines += ["", "The full report is attached (PDF)."]
    return "\n".join(lines) + "\n"


def _html_body(context: Mapping) -> str:
    from screen.report.render import render_html

    return render_html(dict(context), template="email.html.j2")


def report_message(run_root: Path, to: Sequence[str], sender: str) -> EmailMessage:
    """The message for a run folder: subject naming the run, text and HTML summary, PDF attached.

    Raises
    ------
    MailError
        If the folder has no report.pdf (run `screen report DIR` first).
    """
    from screen.report.context import build_context, read_provenance

    layout = RunLayout(Path(run_root))
    if not layout.report_pdf.is_file():
        raise MailError(
            f"{layout.report_pdf}: no PDF report to send; make it with `screen report "
            f"{layout.root}`"
        )
    context = build_context(layout.root)
    go = [c["name"] for c in context["conditions"] if c["decision"] == "go"]
    best = next((c["name"] for c in context["ranking"]), None)
    message = EmailMessage()
    message["Subject"] = (
        f"Screening report {run_name(layout.root, read_provenance(layout))}: "
        f"{context['n_conditions']} condition(s), {len(go)} go" + (f", best {best}" if best else "")
    )
    message["From"] = sender
    message["To"] = ", ".join(to)
    message.set_content(_plain_body(context))
    message.add_alternative(_html_body(context), subtype="html")
    message.add_attachment(
        layout.report_pdf.read_bytes(),
        maintype="application",
        subtype="pdf",
        filename=f"{layout.root.resolve().name}-report.pdf",
    )
    return message


def send(message: EmailMessage, settings: SmtpSettings) -> None:
    """Send ``message`` through the SMTP server of ``settings``.

    Raises
    ------
    MailError
        Naming the server and what it said (never the password), if it cannot be reached,
        refuses the login or the message.
    """
    server = f"{settings.host}:{settings.port}"
    try:
        tls = ssl.create_default_context(cafile=settings.cafile)
    except (OSError, ssl.SSLError) as error:
        raise MailError(f"{settings.cafile}: cannot load the CA file: {error}") from None
    try:
        if settings.security == "ssl":
            client = smtplib.SMTP_SSL(settings.host, settings.port, timeout=TIMEOUT_S, context=tls)
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=TIMEOUT_S)
        with client:
            if settings.security == "starttls":
                client.starttls(context=tls)
            if settings.user:
                client.login(settings.user, settings.password or "")
            client.send_message(message)
    except smtplib.SMTPAuthenticationError as error:
        raise MailError(
            f"{server} refused the login of {settings.user!r}: {_said(error)}"
        ) from None
    except smtplib.SMTPNotSupportedError as error:
        raise MailError(f"{server}: {error} (check security: starttls, ssl or none)") from None
    except smtplib.SMTPException as error:
        raise MailError(f"{server} did not take the message: {_said(error)}") from None
    except OSError as error:
        raise MailError(f"cannot reach the SMTP server {server}: {error}") from None


def _said(error: smtplib.SMTPException) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        text = error.smtp_error
        text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
        return f"{error.smtp_code} {text}"
    return str(error) or type(error).__name__


def mail_report(run_root: Path, to: Sequence[str], settings: SmtpSettings) -> EmailMessage:
    """Build and send the report message of a run folder; return it.

    Raises
    ------
    MailError
        As `report_message` and `send`; the report stays on disk either way.
    """
    message = report_message(run_root, to, settings.sender)
    send(message, settings)
    return message
