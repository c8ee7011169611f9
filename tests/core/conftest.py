"""Fixtures for the core tests that also send: the SMTP capture server with trustme TLS."""

from __future__ import annotations

from tests.servers.smtp import smtp_capture, tls_ca

__all__ = ["smtp_capture", "tls_ca"]
