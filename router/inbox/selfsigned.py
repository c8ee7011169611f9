"""A self-signed certificate for the embedded listener when it listens off loopback and
none is configured, as mail servers' packages do (Debian's Postfix comes with a "snakeoil"
certificate): STARTTLS stays required before MAIL, so mail never crosses the network in
plain text, and a configured `ROUTER_INBOX_TLS_CERT_FILE` replaces it.

Senders that verify certificates will not trust it: it is for opportunistic TLS from the
council's own mail servers until a real certificate is set.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from router.journal.files import write_durably

TLS_DIR = "tls"
CERT_FILE = "selfsigned-cert.pem"
KEY_FILE = "selfsigned-key.pem"
_VALID_DAYS = 3650  # as Debian's snakeoil certificate: replaced, not renewed
_RENEW_BEFORE_DAYS = 30


def self_signed_certificate(state_dir: Path, host_name: str) -> tuple[Path, Path]:
    """The self-signed certificate and key in `state_dir/tls`, made on first use (or when
    it nears its end) for `host_name`.

    Returns:
        The certificate's and the key's paths.

    Raises:
        OSError: the state directory cannot take the files.
    """
    folder = state_dir / TLS_DIR
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    if _still_good(cert_path) and key_path.exists():
        return cert_path, key_path
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host_name[:64] or "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(_names(host_name)), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_durably(key_path, key_pem, tmp_dir=folder)
    os.chmod(key_path, 0o600)
    write_durably(cert_path, certificate.public_bytes(serialization.Encoding.PEM), tmp_dir=folder)
    return cert_path, key_path


def _names(host_name: str) -> list[x509.GeneralName]:
    try:
        return [x509.IPAddress(ipaddress.ip_address(host_name.strip("[]")))]
    except ValueError:
        return [x509.DNSName(host_name or "localhost")]


def _still_good(cert_path: Path) -> bool:
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return False
    left = certificate.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return left > datetime.timedelta(days=_RENEW_BEFORE_DAYS)
