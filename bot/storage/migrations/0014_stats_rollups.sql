-- Daily roll-ups for the statistics (bot/storage/stats_rollups.py): kept by every write that changes what they count,
-- in its transaction, so that a 30-day question reads days × lines rows instead of every case.

-- Cases and done cases per line and calendar day (Europe/Berlin) of their creation.
CREATE TABLE stats_case_days (
    line_id TEXT NOT NULL,
    day TEXT NOT NULL,
    cases INTEGER NOT NULL,
    done INTEGER NOT NULL,
    PRIMARY KEY (line_id, day)
){without_rowid};

-- Cases per whole minute from creation to claim or done, per line, day, person and name ('' for none).
CREATE TABLE stats_minutes (
    step TEXT NOT NULL,
    line_id TEXT NOT NULL,
    day TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    minutes INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (step, line_id, day, actor_id, actor_name, minutes)
){without_rowid};

-- Calls (missed calls and voicemails) per line and UTC hour.
CREATE TABLE stats_call_hours (
    line_id TEXT NOT NULL,
    hour {timestamp} NOT NULL,
    calls INTEGER NOT NULL,
    PRIMARY KEY (line_id, hour)
){without_rowid};

-- Backfill: every case and event stored so far, counted by the statements the writes use.
{stats_rollup_backfill}
