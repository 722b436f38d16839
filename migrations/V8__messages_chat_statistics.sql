-- How many chats the messages are spread over, as the planner should
-- assume it: a tenth of the rows (ten messages a chat, so that reading a
-- page by the chat's index is the cheaper plan at any table size). A prepared
-- statement runs on a generic plan, made without its parameters' values,
-- once Postgres finds it no costlier than planning each call; such a plan
-- estimates `chat_id = $1` from this figure alone. Sampled from a young
-- database (one busy chat among a few, as in tests and benchmarks) it said
-- a chat holds a large share of all messages, and the generic plan of a
-- history page walked messages_pkey backwards filtering by chat: bounded by
-- the table, not the page, for a quiet chat. That plan also cost so much
-- more than a custom one that Postgres planned GetHistory's statement anew
-- on every call, which was most of its cost.
ALTER TABLE messages ALTER COLUMN chat_id SET (n_distinct = -0.1);
ANALYZE messages;
