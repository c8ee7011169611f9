"""A sample referral email (a filled-in, entirely fictional PDF form) for trying the router.

python3 -m router.sample > sample.eml          # write it
python3 -m router.sample --send 127.0.0.1:2525 # send it to a running `serve`
"""

from __future__ import annotations

import argparse
import email.policy
import smtplib
import sys
from email.message import EmailMessage
from email.utils import make_msgid
from importlib import resources

SENDER = "teacher@school.example"
INBOX = "prevent@lewisham.gov.uk"


def sample_email() -> bytes:
    """The sample referral as bytes: a Lewisham address, every required field filled in."""
    form = resources.files("router").joinpath("data/sample-referral.pdf").read_bytes()
    message = EmailMessage()
    message["From"] = f"Sample Teacher <{SENDER}>"
    message["To"] = INBOX
    message["Subject"] = "Prevent referral"
    message["Message-ID"] = make_msgid(domain="school.example")
    message.set_content("Please find attached a Prevent referral form.\n")
    message.add_attachment(form, maintype="application", subtype="pdf", filename="referral.pdf")
    return message.as_bytes(policy=email.policy.SMTP)  # CRLF line ends, as SMTP wants


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m router.sample", description=__doc__)
    parser.add_argument("--send", metavar="HOST:PORT", help="send it over SMTP instead of printing")
    args = parser.parse_args(argv)
    raw = sample_email()
    if not args.send:
        sys.stdout.buffer.write(raw)
        return 0
    host, _, port = args.send.rpartition(":")
    with smtplib.SMTP(host or "127.0.0.1", int(port), timeout=30) as client:
        client.sendmail(SENDER, [INBOX], raw)
    print(f"sent the sample referral to {INBOX} via {args.send}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
