"""A real OAuth 2.0 token endpoint on loopback that issues short-lived JWTs, for tests.

It answers the client credentials grant (`generic`, and msal's secret or certificate
assertion), the JWT bearer grant of a Google service account, and msal's OpenID discovery.
Tokens are HS256 JWTs whose `sub` is the mailbox user, so a Dovecot with the `oauth2` passdb
(`Dovecot(oauth_key=...)`) validates them itself. It can refuse on purpose with the error
bodies Entra ID sends, sign badly, and serve over HTTPS with a trustme certificate.
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
from cryptography import x509

ISSUER = "https://idp.test.local"
CLIENT_ID = "router-test-client"
CLIENT_SECRET = "client-secret-for-tests"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def entra_error(
    code: int, error: str = "invalid_client", status: int = 401
) -> tuple[int, dict[str, Any]]:
    """An error answer shaped like Entra ID's (`error`, `error_description`, `error_codes`)."""
    texts = {
        7000222: "The provided client secret keys for app '{app}' are expired.",
        700016: "Application with identifier '{app}' was not found in the directory 'contoso'.",
        90002: "Tenant 'contoso' not found.",
        65001: "The user or administrator has not consented to use the application.",
    }
    text = texts.get(code, "Something went wrong.").format(app=CLIENT_ID)
    return status, {
        "error": error,
        "error_description": f"AADSTS{code}: {text} Trace ID: 0000 Correlation ID: 1111",
        "error_codes": [code],
        "timestamp": "2026-11-30 12:00:00Z",
    }


@dataclass
class TokenServer:
    """The endpoint and what it has done. `start()`, then `token_url`; `stop()` after.

    Attributes:
        subject: the `sub` of the tokens it issues (the IMAP user).
        lifetime: seconds each token lives (short, so renewal is exercised).
        key: the HS256 key Dovecot trusts.
    """

    subject: str = "testuser"
    lifetime: int = 20
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    tls_context: ssl.SSLContext | None = None
    service_account_keys: dict[str, Any] = field(default_factory=dict)  # client_email -> public key
    client_certificates: list[x509.Certificate] = field(default_factory=list)
    issued: list[dict[str, Any]] = field(default_factory=list)  # claims of every token issued
    requests: list[dict[str, str]] = field(default_factory=list)  # forms posted (secrets kept)
    sign_badly: bool = False
    # Application permissions put in the `roles` claim, as Entra ID does for app-only tokens.
    roles: list[str] = field(default_factory=lambda: ["Mail.ReadWrite", "Mail.Send"])
    # Resources (e.g. a loopback Graph's origin) whose `<resource>/.default` scope gets a token
    # for that audience; any other scope gets the `imap` audience Dovecot and the relay check.
    resources: set[str] = field(default_factory=set)
    _refusal: tuple[int, dict[str, Any]] | None = None
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        scheme = "https" if self.tls_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    @property
    def token_url(self) -> str:
        """The token endpoint (Entra's path shape, so msal can use it too)."""
        return f"{self.base_url}/contoso/oauth2/v2.0/token"

    @property
    def key_base64(self) -> str:
        """The HS256 key as Dovecot's key dictionary holds it."""
        return base64.b64encode(self.key).decode()

    def refuse(self, answer: tuple[int, dict[str, Any]] | None) -> None:
        """Answer every token request with (status, body) from now on; None to stop."""
        with self._lock:
            self._refusal = answer

    def mint(
        self,
        subject: str | None = None,
        lifetime: int | None = None,
        key: bytes | None = None,
        audience: str = "imap",
    ) -> str:
        """A token as the endpoint would issue it (tests may also mint expired or foreign ones).

        `audience` is the resource a `<resource>/.default` scope asked for (Graph's origin).
        """
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": subject or self.subject,
            "aud": audience,
            "roles": list(self.roles),
            "iat": now,
            "nbf": now,
            "exp": now + (self.lifetime if lifetime is None else lifetime),
            "jti": secrets.token_hex(8),
        }
        signing = key or (secrets.token_bytes(32) if self.sign_badly else self.key)
        with self._lock:
            self.issued.append(claims)
        return jwt.encode(claims, signing, algorithm="HS256")

    def verify(self, token: str, audience: str = "imap") -> dict[str, Any]:
        """The claims of a token this endpoint signed and that has not expired.

        Raises:
            jwt.InvalidTokenError: not one of ours, for another audience, or expired.
        """
        return jwt.decode(token, self.key, algorithms=["HS256"], audience=audience, issuer=ISSUER)

    def is_valid(self, token: str) -> bool:
        """Whether `verify` accepts the token (for servers that check it, e.g. SMTP XOAUTH2)."""
        try:
            self.verify(token)
        except jwt.InvalidTokenError:
            return False
        return True

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> TokenServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        if self.tls_context is not None:
            server.socket = self.tls_context.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True, name="token-endpoint").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- grants -------------------------------------------------------------------------

    def answer(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(form)
            refusal = self._refusal
        if refusal is not None:
            return refusal
        grant = form.get("grant_type")
        if grant == JWT_BEARER:
            return self._service_account(form.get("assertion", ""))
        if grant != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if form.get("client_id") != CLIENT_ID:
            return entra_error(700016, "unauthorized_client", 400)
        if not self._client_authenticated(form):
            return entra_error(7000215, "invalid_client", 401)
        return 200, self._issue(self.subject, self._audience(form.get("scope", "")))

    def _client_authenticated(self, form: dict[str, str]) -> bool:
        if "client_secret" in form:
            return form["client_secret"] == CLIENT_SECRET
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return False
        for certificate in self.client_certificates:
            try:
                jwt.decode(
                    form.get("client_assertion", ""),
                    certificate.public_key(),  # type: ignore[arg-type]
                    algorithms=["RS256", "PS256"],
                    options={"verify_aud": False},
                )
            except jwt.InvalidTokenError:
                continue
            return True
        return False

    def _service_account(self, assertion: str) -> tuple[int, dict[str, Any]]:
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
            public_key = self.service_account_keys[unverified["iss"]]
            claims = jwt.decode(
                assertion, public_key, algorithms=["RS256"], options={"verify_aud": False}
            )
        except (jwt.InvalidTokenError, KeyError):
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        if "https://mail.google.com/" not in str(claims.get("scope", "")).split():
            return 400, {
                "error": "unauthorized_client",
                "error_description": "Client is unauthorized to retrieve access tokens"
                " using this method, or client not authorized for any of the scopes requested.",
            }
        return 200, self._issue(str(claims["sub"]))

    def _audience(self, scope: str) -> str:
        """`https://graph.example/.default` asks for a token for that resource (`resources`)."""
        for item in scope.split():
            if item.removesuffix("/.default") in self.resources:
                return item.removesuffix("/.default")
        return "imap"

    def _issue(self, subject: str, audience: str = "imap") -> dict[str, Any]:
        return {
            "token_type": "Bearer",
            "expires_in": self.lifetime,
            "access_token": self.mint(subject, audience=audience),
        }

    def openid_configuration(self) -> dict[str, Any]:
        return {
            "issuer": f"{self.base_url}/contoso/v2.0",
            "token_endpoint": self.token_url,
            "authorization_endpoint": f"{self.base_url}/contoso/oauth2/v2.0/authorize",
        }


def _handler(endpoint: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.split("?")[0].endswith("/.well-known/openid-configuration"):
                if "/contoso/" not in self.path:
                    self._send(400, entra_error(90002, "invalid_tenant", 400)[1])
                    return
                self._send(200, endpoint.openid_configuration())
            else:
                self._send(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            form = {key: values[0] for key, values in parse_qs(raw).items()}
            status, body = endpoint.answer(form)
            self._send(status, body)

    return Handler


@pytest.fixture
def token_server() -> Iterator[TokenServer]:
    """A started plain-HTTP token endpoint on loopback (20-second tokens)."""
    server = TokenServer().start()
    try:
        yield server
    finally:
        server.stop()
