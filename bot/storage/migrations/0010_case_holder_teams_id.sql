-- The Teams id (from.id) of whoever holds a claimed case: the case card asks that user's client to refresh it, so the
-- holder sees the holder's buttons (Done, Release) and not "take over from yourself".
ALTER TABLE cases ADD COLUMN claimed_by_teams_id TEXT;
