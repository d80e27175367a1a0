-- Placetel's call webhooks (Notify API) as a second source: the call id of every event the webhook reported (an
-- event it reported first has no mail yet: its mail columns hold empty strings until the mail joins it), the
-- callbacks and answered repeat calls of each case, and who placed an outgoing call (its HungUp may not say).
ALTER TABLE events ADD COLUMN call_id TEXT;

CREATE UNIQUE INDEX events_by_call_id ON events (call_id) WHERE call_id IS NOT NULL;

CREATE INDEX events_by_line_time ON events (line_id, received_at);

CREATE TABLE contacts (
    call_id TEXT NOT NULL,
    case_id TEXT NOT NULL REFERENCES cases (id),
    kind TEXT NOT NULL CHECK (kind IN ('callback', 'caller_reached')),
    at {timestamp} NOT NULL,
    reached INTEGER NOT NULL,
    duration_seconds INTEGER NOT NULL,
    agent TEXT,
    PRIMARY KEY (call_id, case_id)
);

CREATE INDEX contacts_by_case ON contacts (case_id, at);

CREATE TABLE call_peers (
    call_id TEXT PRIMARY KEY,
    peer TEXT NOT NULL,
    seen_at {timestamp} NOT NULL
);

CREATE INDEX call_peers_by_age ON call_peers (seen_at)
