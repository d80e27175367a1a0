-- Jobs that must run in order: the thread lines of one case run in the order of the case versions that caused them.
-- A job waits while a job with the same ordering key and a lower sequence is still pending or leased.
ALTER TABLE jobs ADD COLUMN ordering_key TEXT;
ALTER TABLE jobs ADD COLUMN ordering_seq BIGINT;

CREATE INDEX jobs_unfinished_in_order ON jobs (ordering_key, ordering_seq)
    WHERE ordering_key IS NOT NULL AND state IN ('pending', 'leased');

-- A card POST under way: written before the POST, removed in the transaction that saves the posted card. A row
-- found by the next attempt means the earlier one's outcome is unknown (the process died, or the answer was lost):
-- that attempt looks for the card in the channel before it posts again (docs/ARCHITECTURE.md, "Exactly once").
CREATE TABLE card_posts (
    case_id TEXT PRIMARY KEY,
    attempt INTEGER NOT NULL,
    started_at {timestamp} NOT NULL
);

-- The team's Microsoft 365 group id (its aadGroupId), where Graph finds the channel's messages; NULL for lines linked
-- before it was recorded (their card posts cannot be looked up; see docs/ARCHITECTURE.md).
ALTER TABLE channel_links ADD COLUMN group_id TEXT;
