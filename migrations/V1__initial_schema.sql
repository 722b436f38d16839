-- Users known to the service (from UpsertUsers or a token's name claim).
CREATE TABLE users (
    id            BIGINT PRIMARY KEY,
    name          TEXT    NOT NULL,
    username      TEXT,
    photo_file_id BIGINT,
    photo_preview BYTEA,
    bot           BOOLEAN NOT NULL DEFAULT FALSE,
    icon          BIGINT,
    color         BIGINT
);
-- Username mentions resolve through this.
CREATE INDEX users_by_username ON users (username) WHERE username IS NOT NULL;

-- kind 0: direct chat between dm_low <= dm_high (equal: saved messages); kind 1: group.
CREATE TABLE chats (
    id                 BIGINT   PRIMARY KEY,
    kind               SMALLINT NOT NULL,
    dm_low             BIGINT,
    dm_high            BIGINT,
    name               TEXT     NOT NULL DEFAULT '',
    owner_id           BIGINT,
    photo_file_id      BIGINT,
    photo_preview      BYTEA,
    highlighted_msg_id BIGINT,
    last_message_id    BIGINT
);
-- One direct chat per pair, even when both sides create it at once.
CREATE UNIQUE INDEX chats_direct_pair ON chats (dm_low, dm_high) WHERE kind = 0;

-- A user's conversation in a chat: read state, counters, draft, preferences.
CREATE TABLE members (
    chat_id   BIGINT   NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    user_id   BIGINT   NOT NULL REFERENCES users (id),
    joined    BIGINT   NOT NULL,
    sort_key  BIGINT   NOT NULL,
    last_read BIGINT   NOT NULL DEFAULT 0,
    unread    INTEGER  NOT NULL DEFAULT 0,
    mentions  INTEGER  NOT NULL DEFAULT 0,
    draft     TEXT,
    notif     SMALLINT NOT NULL DEFAULT 0,
    PRIMARY KEY (chat_id, user_id)
);
-- GetChats: one range scan per page of a user's conversations.
CREATE INDEX members_by_user ON members (user_id, sort_key DESC);

-- The message itself is the encoded protocol message without its chat_ref.
CREATE TABLE messages (
    id        BIGINT   PRIMARY KEY,
    chat_id   BIGINT   NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    author_id BIGINT   NOT NULL,
    client_id BIGINT,
    mentions  BIGINT[] NOT NULL DEFAULT '{}',
    body      BYTEA    NOT NULL
);
-- History pages and the unread window.
CREATE INDEX messages_by_chat ON messages (chat_id, id);
-- Idempotent sends: one message per (author, client_id).
CREATE UNIQUE INDEX messages_client_id ON messages (author_id, client_id) WHERE client_id IS NOT NULL;

-- Each user's update log: gap-free seq per user, taken from the head row,
-- whose row lock orders concurrent appends for the same user.
CREATE TABLE update_heads (
    user_id BIGINT PRIMARY KEY,
    seq     BIGINT NOT NULL
);
CREATE TABLE updates (
    user_id    BIGINT      NOT NULL,
    seq        BIGINT      NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    payload    BYTEA       NOT NULL,
    PRIMARY KEY (user_id, seq)
);
-- Retention pruning walks the log by age.
CREATE INDEX updates_by_age ON updates (created_at);

-- Snowflake worker numbers, leased one per replica start.
CREATE SEQUENCE snowflake_workers;
