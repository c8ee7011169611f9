-- Why a node gave its IMAP mailbox up (it could not log in for minutes), for `status`:
-- empty while it watches, stands by, or never had one.
ALTER TABLE nodes ADD COLUMN watcher_note TEXT;
