-- Statistics roll-ups that keep a month's question small (bot/storage/stats_rollups.py): durations in buckets instead
-- of whole minutes, and calls per caller and day for the repeat callers. Kept by the same writes as 0014's.

-- The per-minute histogram is replaced by the bucketed one.
DROP TABLE stats_minutes;

-- Cases per duration bucket (its lowest minute) from creation to claim or done, per line, day, person and name.
CREATE TABLE stats_durations (
    step TEXT NOT NULL,
    line_id TEXT NOT NULL,
    day TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (step, line_id, day, actor_id, actor_name, bucket)
){without_rowid};

-- Calls (missed calls and voicemails) per line, calendar day (Europe/Berlin) and caller; withheld and unknown callers
-- are left out, and a row is deleted when its caller's calls are.
CREATE TABLE stats_caller_days (
    line_id TEXT NOT NULL,
    day TEXT NOT NULL,
    caller TEXT NOT NULL,
    calls INTEGER NOT NULL,
    PRIMARY KEY (line_id, day, caller)
){without_rowid};

-- Backfill: every case and event stored so far, counted by the statements the writes use.
{stats_rollup_backfill_0015}
