"""Fixtures for delivery tests: real SMTP capture servers with trustme TLS."""

from tests.servers.smtp import smtp_capture, tls_ca

__all__ = ["smtp_capture", "tls_ca"]
