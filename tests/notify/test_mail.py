import email
import email.policy
import os
import shutil
import socket
import ssl
import subprocess

import pytest
from typer.testing import CliRunner

from screen.cli import app
from screen.notify.mail import MailError, mail_report, recipients, smtp_settings

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402

PASSWORD = "s3cret-Pw"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append(envelope)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data == (b"screening", PASSWORD.encode())
    return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535


@pytest.fixture
def smtp_server():
    """A real SMTP server on 127.0.0.1 (plain, login allowed without TLS); yields (port, inbox)."""
    inbox = Inbox()
    controller = aiosmtpd_controller.Controller(
        inbox,
        hostname="127.0.0.1",
        port=_free_port(),
        authenticator=_authenticator,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield controller.port, inbox
    finally:
        controller.stop()


@pytest.fixture
def run_folder(tmp_path, write_run):
    run = write_run(
        tmp_path / "week2",
        "2026-11-25T09:00:00+00:00",
        {
            "gbg_6uM": {"good_particles": 800, "metadata": {"grid": "Quantifoil"}},
            "apo_lacey": {"good_particles": 0, "metadata": {"grid": "lacey carbon"}},
        },
    )
    (run / "report.pdf").write_bytes(PDF)
    return run


def _env(port: int, **more) -> dict:
    return {
        "SCREEN_SMTP_HOST": "127.0.0.1",
        "SCREEN_SMTP_PORT": str(port),
        "SCREEN_SMTP_SECURITY": "none",
        "SCREEN_SMTP_FROM": "cryoem@example.org",
        **more,
    }


def _parsed(envelope) -> email.message.EmailMessage:
    return email.message_from_bytes(envelope.content, policy=email.policy.default)


def test_the_report_arrives_with_the_pdf_byte_for_byte_and_the_numbers(smtp_server, run_folder):
    port, inbox = smtp_server
    env = _env(port, SCREEN_SMTP_USER="screening", SCREEN_SMTP_PASSWORD=PASSWORD)
    mail_report(run_folder, ["a@example.org", "b@example.org"], smtp_settings(environ=env))
    (envelope,) = inbox.messages
    assert envelope.rcpt_tos == ["a@example.org", "b@example.org"]
    assert envelope.mail_from == "cryoem@example.org"
    message = _parsed(envelope)
    assert message["Subject"].strip() == (  # folded onto its own line: mail clients unfold
        "Screening report manifest.csv -> week2: 2 condition(s), 1 go, best gbg_6uM"
    )
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "week2-report.pdf"
    assert attachment.get_content() == PDF
    plain = message.get_body(("plain",)).get_content()
    assert "gbg_6uM: GO (no flag" in plain and "apo_lacey: NO-GO (no good particles)" in plain
    assert "Good particles" in plain and "800" in plain  # the Table 3 rows
    html = message.get_body(("html",)).get_content()
    assert "<td style" in html and "NO-GO" in html
    assert PASSWORD not in envelope.content.decode(errors="replace")


def test_a_failing_server_is_a_clear_error_and_the_report_stays(smtp_server, run_folder):
    port, inbox = smtp_server
    wrong = _env(port, SCREEN_SMTP_USER="screening", SCREEN_SMTP_PASSWORD="wrong")
    with pytest.raises(MailError, match=f"127.0.0.1:{port} refused the login of 'screening'") as e:
        mail_report(run_folder, ["a@example.org"], smtp_settings(environ=wrong))
    assert "wrong" not in str(e.value)
    closed = _env(_free_port())
    with pytest.raises(MailError, match="cannot reach the SMTP server 127.0.0.1:"):
        mail_report(run_folder, ["a@example.org"], smtp_settings(environ=closed))
    assert inbox.messages == [] and (run_folder / "report.pdf").read_bytes() == PDF


def test_screen_email_sends_and_says_how_to_retry_when_it_cannot(
    smtp_server, run_folder, monkeypatch
):
    port, inbox = smtp_server
    for key, value in _env(_free_port()).items():
        monkeypatch.setenv(key, value)
    args = ["email", str(run_folder), "--to", "a@example.org,b@example.org"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "error: the report was not mailed: cannot reach the SMTP server" in output
    assert (
        f"send it later with: screen email {run_folder} --to a@example.org,b@example.org" in output
    )
    monkeypatch.setenv("SCREEN_SMTP_PORT", str(port))
    result = CliRunner().invoke(app, args)  # the retry
    assert result.exit_code == 0, result.output
    assert len(inbox.messages) == 1
    assert CliRunner().invoke(app, ["email", str(run_folder), "--to", "nobody"]).exit_code == 2


def test_settings_come_from_the_file_and_the_environment_and_the_password_never_from_argv(
    tmp_path,
):
    config = tmp_path / "smtp.toml"
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    config.write_text(
        '[smtp]\nhost = "smtp.example.org"\nsecurity = "ssl"\nuser = "screening"\n'
        f'password_file = "{password_file}"\n'
    )
    settings = smtp_settings(config, environ={})
    assert (settings.host, settings.port, settings.security) == ("smtp.example.org", 465, "ssl")
    assert settings.password == PASSWORD and settings.sender == "screening"
    assert PASSWORD not in repr(settings)
    overridden = smtp_settings(config, environ={"SCREEN_SMTP_PORT": "2465"})
    assert overridden.port == 2465
    password_file.chmod(0o644)
    with pytest.raises(MailError, match="readable by others .* chmod 600"):
        smtp_settings(config, environ={})
    config.write_text('[smtp]\nhost = "h"\npassword = "x"\n')
    with pytest.raises(MailError, match="a password does not belong in the config file"):
        smtp_settings(config, environ={})
    with pytest.raises(MailError, match="no SMTP server"):
        smtp_settings(environ={"HOME": str(tmp_path)})
    with pytest.raises(MailError, match="security must be starttls, ssl or none"):
        smtp_settings(environ={"SCREEN_SMTP_HOST": "h", "SCREEN_SMTP_SECURITY": "tls"})
    with pytest.raises(MailError, match="not an e-mail address: nobody"):
        recipients("a@example.org,nobody")
    assert "--smtp-password" not in CliRunner().invoke(app, ["email", "--help"]).output


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
def test_starttls_with_a_certificate_checked_against_the_given_ca(tmp_path, run_folder):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    inbox = Inbox()
    controller = aiosmtpd_controller.Controller(
        inbox, hostname="127.0.0.1", port=_free_port(), tls_context=tls, require_starttls=True
    )
    controller.start()
    try:
        env = _env(controller.port, SCREEN_SMTP_SECURITY="starttls")
        with pytest.raises(MailError, match="certificate verify failed"):
            mail_report(run_folder, ["a@example.org"], smtp_settings(environ=env))
        env["SCREEN_SMTP_CAFILE"] = str(cert)
        mail_report(run_folder, ["a@example.org"], smtp_settings(environ=env))
    finally:
        controller.stop()
    (envelope,) = inbox.messages
    assert list(_parsed(envelope).iter_attachments())[0].get_content() == PDF
    assert os.path.getsize(run_folder / "report.pdf") == len(PDF)


def test_screen_run_mails_its_report_and_refuses_bad_settings_before_any_work(
    smtp_server, screened, tmp_path, monkeypatch
):
    port, inbox = smtp_server
    out = screened.copy_results(tmp_path / "out")
    args = ["run", str(screened.manifest), "--out", str(out), "-q", "--email", "a@example.org"]
    result = CliRunner().invoke(app, [*args, "--no-report"])
    assert result.exit_code == 2 and "cannot go with --no-report" in result.output
    monkeypatch.delenv("SCREEN_SMTP_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/screen/smtp.toml
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "no SMTP server" in result.output
    assert not (out / "report.pdf").exists()  # refused before any work
    for key, value in _env(port).items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"mailed: {out / 'report.pdf'} to a@example.org" in result.output
    (envelope,) = inbox.messages
    attachment = next(_parsed(envelope).iter_attachments())
    assert attachment.get_content() == (out / "report.pdf").read_bytes()
