-- The periodic prune finds dead invites (expired, or used up) through these
-- instead of scanning every group's invites. A use changes `uses`, which the
-- second index's predicate reads, so a use is no HOT update; uses are rare.
CREATE INDEX invites_by_expiry ON invites (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX invites_used_up ON invites (chat_id) WHERE uses >= max_uses;
