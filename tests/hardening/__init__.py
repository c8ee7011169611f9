"""Hardening tests: hostile input, recipients, privacy, retention, transport, abuse."""
