-- Caller identification cache, directory delta links, stats indexes and the weekly digest's record.

-- One row per (source, entry, number): a contact of a pool mailbox (source 'contacts:<mailbox>') or a user of the
-- directory (source 'directory'), under each of its phone numbers in E.164.
CREATE TABLE caller_entries (
    source TEXT NOT NULL,
    entry_id TEXT NOT NULL,
    number TEXT NOT NULL,
    display_name TEXT NOT NULL,
    detail TEXT,
    PRIMARY KEY (source, entry_id, number)
);

CREATE INDEX caller_entries_by_number ON caller_entries (number, source);

-- The deltaLink of each caller source, so that a refresh only fetches what changed.
CREATE TABLE caller_sync (
    source TEXT PRIMARY KEY,
    delta_link TEXT NOT NULL,
    synced_at {timestamp} NOT NULL
);

-- Covering indexes for the statistics: every column the stats read is in the index, so a period's cases and calls
-- are read from the index alone, without a table lookup per row.
CREATE INDEX cases_for_stats ON cases (line_id, created_at, state, claimed_at, claimed_by_id, claimed_by_name,
    done_at, done_by_id, done_by_name);

CREATE INDEX events_for_stats ON events (line_id, received_at, kind, caller);

-- Each line's weekly digest, one row per week: the row and the posting job are written in one transaction.
CREATE TABLE digest_runs (
    line_id TEXT NOT NULL,
    week TEXT NOT NULL,
    scheduled_at {timestamp} NOT NULL,
    activity_id TEXT,
    PRIMARY KEY (line_id, week)
)
