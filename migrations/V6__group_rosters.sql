-- A group's participants, oldest member first (joined, then user id), kept
-- on its chat row so that a page of conversations reads each group's
-- participants with the chat instead of aggregating its members per group
-- on every read (a third of GetChats' statement). Direct chats keep NULL.
--
-- The database keeps it: an insert or delete on members refreshes the
-- rosters of the groups it touched once per statement, whatever code made
-- it (a replica of an older version during a rolling update included).
-- Every change of a group's members holds its chat's row lock first, so
-- the refresh sees every committed member and its own.
ALTER TABLE chats ADD COLUMN roster BIGINT[];

CREATE FUNCTION refresh_group_rosters() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE chats c
    SET roster = (SELECT array_agg(x.user_id ORDER BY x.joined, x.user_id)
                  FROM members x WHERE x.chat_id = c.id)
    WHERE c.kind = 1 AND c.id IN (SELECT DISTINCT chat_id FROM touched);
    RETURN NULL;
END
$$;

CREATE TRIGGER members_inserted_refresh_rosters
    AFTER INSERT ON members REFERENCING NEW TABLE AS touched
    FOR EACH STATEMENT EXECUTE FUNCTION refresh_group_rosters();
CREATE TRIGGER members_deleted_refresh_rosters
    AFTER DELETE ON members REFERENCING OLD TABLE AS touched
    FOR EACH STATEMENT EXECUTE FUNCTION refresh_group_rosters();

UPDATE chats c
SET roster = (SELECT array_agg(x.user_id ORDER BY x.joined, x.user_id)
              FROM members x WHERE x.chat_id = c.id)
WHERE c.kind = 1;
