"""The `microsoft` provider: Entra ID client credentials with msal (secret or certificate)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import msal
import msal.exceptions
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from router.oauth.base import Cause, Grant, OAuthError
from router.oauth.errors import classify_response
from router.oauth.generic import HttpSession, grant_from

AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_SCOPE = "https://outlook.office365.com/.default"
_TOKEN_PATH = "/oauth2/v2.0/token"  # noqa: S105 (a URL path, not a password)
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----\r?\n.+?\r?\n-----END \1-----", re.DOTALL)


@dataclass(frozen=True)
class CertificateCredential:
    """A certificate and its private key, read from one PEM file.

    Attributes:
        private_key_pem: the key, for signing the client assertion (never logged).
        certificate_pem: the public certificate.
        thumbprint_sha1: what the Entra portal shows as the certificate's "Thumbprint".
        not_after: when the certificate expires (UTC).
    """

    private_key_pem: str = field(repr=False)
    certificate_pem: str
    thumbprint_sha1: str
    not_after: datetime


def load_certificate(path: Path) -> CertificateCredential:
    """Read a PEM file holding a certificate and its unencrypted private key.

    Raises:
        ValueError: the file is missing, unreadable, or lacks the certificate or the key;
            the message names ROUTER_OAUTH_CERTIFICATE_FILE and never holds the key.
    """
    where = f"ROUTER_OAUTH_CERTIFICATE_FILE {path}"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{where}: cannot be read ({exc.strerror})") from None
    blocks = {m.group(1).decode(): m.group(0) for m in reversed(list(_PEM_BLOCK.finditer(data)))}
    cert_pem = blocks.get("CERTIFICATE")
    key_pem = next((pem for kind, pem in blocks.items() if kind.endswith("PRIVATE KEY")), None)
    if cert_pem is None or key_pem is None:
        raise ValueError(f"{where}: needs a PEM certificate and its private key in one file")
    try:
        certificate = x509.load_pem_x509_certificate(cert_pem)
        serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        # cryptography's messages describe the format, never the key's bytes.
        raise ValueError(f"{where}: {type(exc).__name__}: cannot be loaded") from None
    der = certificate.public_bytes(serialization.Encoding.DER)
    return CertificateCredential(
        private_key_pem=key_pem.decode(),
        certificate_pem=cert_pem.decode(),
        thumbprint_sha1=hashlib.sha1(der, usedforsecurity=False).hexdigest().upper(),
        not_after=certificate.not_valid_after_utc,
    )


def _printable_status(exc: Exception) -> str:
    match = re.search(r"HTTP Error: (\d+)", str(exc))
    return f"HTTP {match.group(1)}" if match else type(exc).__name__


def authority_for(tenant: str, token_url: str) -> str:
    """The msal authority: the tenant at Entra ID, or the one `token_url` names.

    Raises:
        ValueError: `token_url` does not end in `/oauth2/v2.0/token`.
    """
    if not token_url:
        return f"{AUTHORITY_HOST}/{tenant}"
    if not token_url.endswith(_TOKEN_PATH):
        raise ValueError(
            f"ROUTER_OAUTH_TOKEN_URL for microsoft must end in {_TOKEN_PATH}"
            f" (https://login.microsoftonline.com/TENANT{_TOKEN_PATH})"
        )
    return token_url[: -len(_TOKEN_PATH)]


class MicrosoftFetcher:
    """App-only tokens from Entra ID. See `TokenFetcher`.

    Args:
        credential: the client secret, or the certificate credential.
        token_url: an authority other than Entra ID's own (a national cloud, tests).
        verify: True for the system CAs, or a CA bundle path.
    """

    provider = "microsoft"

    def __init__(
        self,
        tenant: str,
        client_id: str,
        credential: str | CertificateCredential,
        scope: str,
        *,
        token_url: str = "",
        verify: bool | str = True,
    ) -> None:
        self._authority = authority_for(tenant, token_url)
        self._custom = bool(token_url)
        self._client_id = client_id
        self._credential = credential
        self._scopes = [scope or DEFAULT_SCOPE]
        self._verify = verify
        self._app: msal.ConfidentialClientApplication | None = None

    def _client_credential(self) -> str | dict[str, Any]:
        if isinstance(self._credential, str):
            return self._credential
        # Without a SHA-1 thumbprint msal signs with the certificate's SHA-256 one (x5t#S256).
        return {
            "private_key": self._credential.private_key_pem,
            "public_certificate": self._credential.certificate_pem,
        }

    def _application(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            try:
                self._app = msal.ConfidentialClientApplication(
                    self._client_id,
                    client_credential=self._client_credential(),
                    authority=self._authority,
                    validate_authority=not self._custom,
                    instance_discovery=not self._custom,
                    http_client=HttpSession(self._verify),
                )
            except requests.RequestException as exc:
                raise OAuthError(Cause.NETWORK, type(exc).__name__, retryable=True) from None
            except ValueError:
                # msal found no OpenID configuration for the authority: the tenant is unknown.
                raise OAuthError(Cause.WRONG_TENANT, "AADSTS90002") from None
        return self._app

    def fetch(self) -> Grant:
        """See `TokenFetcher`."""
        app = self._application()
        app.remove_tokens_for_client()  # our own cache decides when to renew, not msal's
        try:
            result = app.acquire_token_for_client(scopes=self._scopes)
        except requests.RequestException as exc:
            raise OAuthError(Cause.NETWORK, type(exc).__name__, retryable=True) from None
        except msal.exceptions.MsalServiceError as exc:  # a 5xx with no OAuth error body
            raise OAuthError(Cause.ENDPOINT, _printable_status(exc), retryable=True) from None
        except ValueError:
            raise OAuthError(Cause.CREDENTIALS, "msal refused the credential") from None
        if not isinstance(result, dict):
            raise OAuthError(Cause.ENDPOINT, "no answer")
        if "access_token" not in result:
            raise classify_response(None, result)
        return grant_from(result)
