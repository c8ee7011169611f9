"""App-only OAuth 2.0 access tokens (Entra ID, Google, generic) for IMAP and SMTP XOAUTH2."""
