"""Real servers on loopback for tests: SMTP capture servers (smtp.py), Dovecot IMAP (dovecot.py)."""
