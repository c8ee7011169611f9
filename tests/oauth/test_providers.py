"""The microsoft and google providers against the loopback token endpoint (no cloud needed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from router.oauth.base import Cause, OAuthError
from router.oauth.google import GoogleFetcher, load_service_account
from router.oauth.microsoft import MicrosoftFetcher, load_certificate
from router.oauth.sources import OAuthSources
from router.settings import Settings
from tests.servers.smtp import TlsAuthority
from tests.servers.token import CLIENT_ID, CLIENT_SECRET, TokenServer, entra_error

SERVICE_ACCOUNT = "router@council-project.iam.gserviceaccount.com"


@pytest.fixture
def entra(tls_ca: TlsAuthority) -> Iterator[TokenServer]:
    """The token endpoint over HTTPS (msal accepts nothing else), trusted through tls_ca."""
    server = TokenServer(tls_context=tls_ca.server_context).start()
    try:
        yield server
    finally:
        server.stop()


def _microsoft(entra: TokenServer, tls_ca: TlsAuthority, credential: object = CLIENT_SECRET):  # type: ignore[no-untyped-def]
    return MicrosoftFetcher(
        "contoso",
        CLIENT_ID,
        credential,  # type: ignore[arg-type]
        "",
        token_url=entra.token_url,
        verify=str(tls_ca.ca_file),
    )


def _certificate_file(path: Path, days: int) -> tuple[Path, x509.Certificate]:
    """A PEM file with an RSA certificate and its key, valid for `days` more days."""
    ca = trustme.CA()
    leaf = ca.issue_cert(
        "router-app.example",
        not_after=datetime.now(UTC) + timedelta(days=days),
        key_type=trustme.KeyType.RSA,
    )
    pem = leaf.cert_chain_pems[0].bytes() + leaf.private_key_pem.bytes()
    path.write_bytes(pem)
    return path, x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())


def test_microsoft_client_secret_gets_a_token(entra: TokenServer, tls_ca: TlsAuthority) -> None:
    """msal, pointed at the endpoint through ROUTER_OAUTH_TOKEN_URL, gets a token with the
    client secret and the Exchange Online scope by default."""
    grant = _microsoft(entra, tls_ca).fetch()
    assert entra.verify(grant.value)["sub"] == "testuser"
    assert 0 < grant.lifetime <= entra.lifetime
    [form] = entra.requests
    assert form["grant_type"] == "client_credentials"
    assert form["scope"] == "https://outlook.office365.com/.default"


@pytest.mark.parametrize(
    ("answer", "cause", "setting"),
    [
        (entra_error(7000222), Cause.EXPIRED_SECRET, "ROUTER_OAUTH_CLIENT_SECRET"),
        (
            entra_error(700016, "unauthorized_client", 400),
            Cause.UNKNOWN_CLIENT,
            "ROUTER_OAUTH_CLIENT_ID",
        ),
        (
            entra_error(65001, "invalid_grant", 400),
            Cause.CONSENT_MISSING,
            "admin consent in Entra ID",
        ),
        ((401, {"error": "invalid_client"}), Cause.INVALID_CLIENT, "ROUTER_OAUTH_CLIENT_SECRET"),
        ((503, {}), Cause.ENDPOINT, "ROUTER_OAUTH_TOKEN_URL"),
    ],
)
def test_microsoft_refusals_are_classified(
    entra: TokenServer,
    tls_ca: TlsAuthority,
    answer,
    cause: Cause,
    setting: str,  # type: ignore[no-untyped-def]
) -> None:
    """Entra ID's error bodies become causes that name the setting to check."""
    entra.refuse(answer)
    with pytest.raises(OAuthError) as refused:
        _microsoft(entra, tls_ca).fetch()
    assert refused.value.cause is cause
    assert refused.value.cause.setting == setting
    assert CLIENT_SECRET not in str(refused.value)


def test_microsoft_unknown_tenant(entra: TokenServer, tls_ca: TlsAuthority) -> None:
    """A tenant the identity provider does not know (no OpenID configuration) is `wrong_tenant`."""
    fetcher = MicrosoftFetcher(
        "fabrikam",
        CLIENT_ID,
        CLIENT_SECRET,
        "",
        token_url=entra.token_url.replace("/contoso/", "/fabrikam/"),
        verify=str(tls_ca.ca_file),
    )
    with pytest.raises(OAuthError) as refused:
        fetcher.fetch()
    assert refused.value.cause is Cause.WRONG_TENANT


def test_microsoft_certificate_credential(
    tmp_path: Path, entra: TokenServer, tls_ca: TlsAuthority
) -> None:
    """A PEM certificate and key are read (thumbprint, expiry) and msal's signed client
    assertion is accepted by the endpoint that knows the certificate."""
    path, certificate = _certificate_file(tmp_path / "app.pem", days=365)
    credential = load_certificate(path)
    sha1 = hashes.SHA1()  # noqa: S303 (the thumbprint Entra shows is SHA-1)
    assert credential.thumbprint_sha1 == certificate.fingerprint(sha1).hex().upper()
    assert credential.not_after == certificate.not_valid_after_utc
    entra.client_certificates.append(certificate)
    grant = _microsoft(entra, tls_ca, credential).fetch()
    assert entra.is_valid(grant.value)
    assert "client_secret" not in entra.requests[-1]


def test_certificate_file_without_key_is_refused(tmp_path: Path) -> None:
    """A certificate file without its private key is a start-up error naming the setting."""
    path, _ = _certificate_file(tmp_path / "app.pem", days=365)
    path.write_bytes(
        path.read_bytes().split(b"-----BEGIN PRIVATE KEY")[0].split(b"-----BEGIN RSA")[0]
    )
    with pytest.raises(ValueError, match="ROUTER_OAUTH_CERTIFICATE_FILE"):
        load_certificate(path)


def test_certificate_expiring_soon_is_warned_and_measured(tmp_path: Path) -> None:
    """A certificate credential that expires within 30 days is warned about and its remaining
    life is a gauge on /metrics."""
    path, _ = _certificate_file(tmp_path / "app.pem", days=10)
    settings = Settings(
        inbox="imaps://prevent@outlook.office365.com/INBOX",
        inbox_auth="oauth2",
        oauth_tenant="contoso",
        oauth_client_id=CLIENT_ID,
        oauth_certificate_file=path,
    )
    sources = OAuthSources(settings)
    registry = CollectorRegistry()
    sources.register_metrics(registry)
    with capture_logs() as logs:
        sources.check_certificate()
    [warning] = [e for e in logs if e["event"] == "oauth.certificate_expiring"]
    assert 9 < warning["days_left"] <= 10
    seconds = registry.get_sample_value("router_oauth_certificate_expiry_seconds")
    assert seconds is not None and 9 * 86400 < seconds <= 10 * 86400
    assert sources.health()["certificate_expires_in_days"] <= 10


def _service_account(tmp_path: Path, token_server: TokenServer) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    token_server.service_account_keys[SERVICE_ACCOUNT] = key.public_key()
    info = {
        "type": "service_account",
        "client_email": SERVICE_ACCOUNT,
        "client_id": "1234567890",
        "private_key_id": "k1",
        "private_key": pem,
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(info))
    return path


def test_google_service_account_acts_as_the_mailbox(
    tmp_path: Path, token_server: TokenServer
) -> None:
    """The service account's signed JWT asks for https://mail.google.com/ as the mailbox user
    (domain-wide delegation), and the token is for that user."""
    info = load_service_account(_service_account(tmp_path, token_server))
    fetcher = GoogleFetcher(info, "prevent@council.example", "", token_url=token_server.token_url)
    grant = fetcher.fetch()
    assert token_server.verify(grant.value)["sub"] == "prevent@council.example"
    assert grant.lifetime > 0


def test_google_without_delegation_is_unauthorized_client(
    tmp_path: Path, token_server: TokenServer
) -> None:
    """A scope the service account is not delegated is `unauthorized_client`, naming the client."""
    info = load_service_account(_service_account(tmp_path, token_server))
    fetcher = GoogleFetcher(
        info,
        "prevent@council.example",
        "https://www.googleapis.com/auth/gmail.readonly",
        token_url=token_server.token_url,
    )
    with pytest.raises(OAuthError) as refused:
        fetcher.fetch()
    assert refused.value.cause is Cause.UNAUTHORIZED_CLIENT
