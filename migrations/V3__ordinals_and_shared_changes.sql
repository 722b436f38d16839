-- Per-chat message ordinals: a send no longer touches other members' counters,
-- and unread counts derive from ordinals (msg_seq - read_seq - skipped).
ALTER TABLE chats ADD COLUMN msg_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN ordinal BIGINT NOT NULL DEFAULT 0;
UPDATE messages m SET ordinal = o.n
FROM (SELECT id, row_number() OVER (PARTITION BY chat_id ORDER BY id) AS n FROM messages) o
WHERE m.id = o.id;
UPDATE chats c SET msg_seq = COALESCE((SELECT max(ordinal) FROM messages WHERE chat_id = c.id), 0);

-- read_seq: the ordinal of the newest message at or before the read pointer.
-- skipped: deleted messages after the pointer that still count in msg_seq.
ALTER TABLE members ADD COLUMN read_seq BIGINT NOT NULL DEFAULT 0,
                    ADD COLUMN skipped INTEGER NOT NULL DEFAULT 0;
UPDATE members m SET read_seq = COALESCE(
    (SELECT max(ordinal) FROM messages WHERE chat_id = m.chat_id AND id <= m.last_read), 0);
UPDATE members m SET skipped = GREATEST(c.msg_seq - m.read_seq - m.unread, 0)
FROM chats c WHERE c.id = m.chat_id;
ALTER TABLE members DROP COLUMN unread;

-- Deleted messages by ordinal, so that a read pointer moving forward knows how
-- many of the messages after it are gone without counting the history.
CREATE TABLE message_deletions (
    chat_id   BIGINT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    ordinal   BIGINT NOT NULL,
    author_id BIGINT NOT NULL,
    PRIMARY KEY (chat_id, ordinal)
);
-- Who each message mentions, by ordinal: unread mentions after a pointer.
CREATE TABLE message_mentions (
    chat_id BIGINT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL,
    ordinal BIGINT NOT NULL,
    PRIMARY KEY (chat_id, user_id, ordinal)
);
INSERT INTO message_mentions (chat_id, user_id, ordinal)
SELECT DISTINCT chat_id, unnest(mentions), ordinal FROM messages;

-- A change's payload, stored once however many users it reaches; each log
-- entry names it and holds only what differs for its user. Entries written
-- before this migration keep their rendered payload.
CREATE TABLE changes (
    id         BIGINT      PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    payload    BYTEA       NOT NULL
);
CREATE INDEX changes_by_age ON changes (created_at);
ALTER TABLE updates ALTER COLUMN payload DROP NOT NULL,
                    ADD COLUMN change_id BIGINT,
                    ADD COLUMN unread INTEGER;
