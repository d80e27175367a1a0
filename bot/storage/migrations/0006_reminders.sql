-- Reminders (issue 20): the durable schedule, the ledger of reminders sent and of morning overviews sent.
-- A reminder is recorded in the same transaction that queues its effects; the primary keys make each one once.

CREATE TABLE reminder_schedule (
    case_id TEXT PRIMARY KEY REFERENCES cases (id),
    line_id TEXT NOT NULL,
    episode TEXT NOT NULL,
    step INTEGER NOT NULL,
    kind TEXT NOT NULL,
    due_at {timestamp},
    case_version INTEGER NOT NULL
);

CREATE INDEX reminder_schedule_due ON reminder_schedule (due_at);

CREATE TABLE reminders_sent (
    case_id TEXT NOT NULL REFERENCES cases (id),
    episode TEXT NOT NULL,
    step INTEGER NOT NULL,
    kind TEXT NOT NULL,
    line_id TEXT NOT NULL,
    due_at {timestamp} NOT NULL,
    sent_at {timestamp} NOT NULL,
    PRIMARY KEY (case_id, episode, step)
);

CREATE TABLE overviews_sent (
    line_id TEXT NOT NULL,
    opening {timestamp} NOT NULL,
    case_count INTEGER NOT NULL,
    sent_at {timestamp} NOT NULL,
    PRIMARY KEY (line_id, opening)
)
