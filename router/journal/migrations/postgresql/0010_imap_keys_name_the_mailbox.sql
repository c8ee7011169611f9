-- IMAP source keys name their mailbox (issue 26): a key `imap:<uidvalidity>:<uid>`, stored by a
-- version whose keys named no mailbox, becomes `imap://user@host/folder;UIDVALIDITY=<v>/;UID=<uid>`
-- (router/core/mailbox.py) where the first-connection records name exactly one mailbox that
-- had that UIDVALIDITY. The others are adopted by the mailbox the router watches when its
-- folder has their UIDVALIDITY (router/inbox/imap.py, `ImapInbox._catch_up`).
UPDATE messages SET source_key = (
    SELECT 'imap://' || u.mailbox || ';UIDVALIDITY=' || u.uidvalidity || '/;UID='
        || substr(messages.source_key, length('imap:' || u.uidvalidity || ':') + 1)
    FROM mailbox_untouched AS u
    WHERE substr(messages.source_key, 1, length('imap:' || u.uidvalidity || ':'))
        = 'imap:' || u.uidvalidity || ':'
)
WHERE source_key LIKE 'imap:%' AND source_key NOT LIKE 'imap://%'
    AND (SELECT COUNT(*) FROM mailbox_untouched AS u
        WHERE substr(messages.source_key, 1, length('imap:' || u.uidvalidity || ':'))
            = 'imap:' || u.uidvalidity || ':') = 1;
