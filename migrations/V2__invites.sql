-- Group invites: codes are random and unguessable; uses are counted under
-- the row lock, so max_uses holds under concurrent use.
CREATE TABLE invites (
    code       TEXT    PRIMARY KEY,
    chat_id    BIGINT  NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    creator_id BIGINT  NOT NULL,
    created_at BIGINT  NOT NULL,
    expires_at BIGINT,
    max_uses   INTEGER,
    uses       INTEGER NOT NULL DEFAULT 0
);
-- ListChatInvites: a group's invites, optionally one creator's.
CREATE INDEX invites_by_chat ON invites (chat_id, creator_id);
