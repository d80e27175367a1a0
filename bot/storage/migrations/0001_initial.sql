-- Initial schema. {timestamp}, {json} and {id_pk} are replaced with the engine's types (bot/storage/database.py).
-- Statements end with a semicolon. Keep semicolons out of literals (the runner splits on them).

CREATE TABLE cases (
    id TEXT PRIMARY KEY,
    line_id TEXT NOT NULL,
    caller TEXT,
    caller_key TEXT,
    caller_name TEXT,
    state TEXT NOT NULL CHECK (state IN ('open', 'claimed', 'done')),
    version INTEGER NOT NULL,
    created_at {timestamp} NOT NULL,
    updated_at {timestamp},
    claimed_by_id TEXT,
    claimed_by_name TEXT,
    claimed_at {timestamp},
    done_by_id TEXT,
    done_by_name TEXT,
    done_at {timestamp},
    previous_case_id TEXT,
    previous_done_by_id TEXT,
    previous_done_by_name TEXT,
    previous_done_at {timestamp},
    reopened INTEGER NOT NULL DEFAULT 0
);

CREATE UNIQUE INDEX cases_one_active_per_caller ON cases (line_id, caller_key)
    WHERE state <> 'done' AND caller_key IS NOT NULL;

CREATE INDEX cases_by_line_state ON cases (line_id, state, created_at);

CREATE INDEX cases_last_done ON cases (line_id, caller_key, done_at) WHERE state = 'done';

CREATE TABLE events (
    source_id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL REFERENCES cases (id),
    kind TEXT NOT NULL,
    line_id TEXT NOT NULL,
    caller TEXT,
    caller_name TEXT,
    received_at {timestamp} NOT NULL,
    mailbox TEXT NOT NULL,
    message_id TEXT NOT NULL,
    web_link TEXT,
    subject TEXT NOT NULL,
    sender TEXT NOT NULL,
    voicemail_attachment_id TEXT,
    voicemail_file_name TEXT,
    voicemail_duration_seconds INTEGER
);

CREATE INDEX events_by_case ON events (case_id, received_at, source_id);

CREATE TABLE mails (
    mailbox TEXT NOT NULL,
    message_id TEXT NOT NULL,
    case_id TEXT NOT NULL REFERENCES cases (id),
    observed_flag TEXT,
    written_flag TEXT,
    PRIMARY KEY (mailbox, message_id)
);

CREATE INDEX mails_by_case ON mails (case_id);

CREATE TABLE installations (
    team_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    service_url TEXT NOT NULL,
    conversation_reference {json} NOT NULL,
    channels {json} NOT NULL,
    installed_at {timestamp}
);

CREATE TABLE channel_links (
    line_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    team_id TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    service_url TEXT NOT NULL,
    linked_by TEXT NOT NULL,
    linked_at {timestamp} NOT NULL
);

CREATE INDEX channel_links_by_channel ON channel_links (channel_id);

CREATE INDEX channel_links_by_team ON channel_links (team_id);

CREATE TABLE cards (
    case_id TEXT PRIMARY KEY REFERENCES cases (id),
    conversation_id TEXT NOT NULL,
    activity_id TEXT NOT NULL,
    posted_version INTEGER NOT NULL
);

CREATE INDEX cards_by_activity ON cards (activity_id);

CREATE TABLE subscriptions (
    mailbox TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL UNIQUE,
    expires_at {timestamp} NOT NULL
);

CREATE TABLE delta_links (
    mailbox TEXT PRIMARY KEY,
    delta_link TEXT NOT NULL
);

CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at {timestamp} NOT NULL
);

CREATE TABLE jobs (
    id {id_pk},
    kind TEXT NOT NULL,
    payload {json} NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'leased', 'done', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    dedupe_key TEXT,
    run_at {timestamp} NOT NULL,
    leased_by TEXT,
    lease_expires_at {timestamp},
    last_error TEXT,
    created_at {timestamp} NOT NULL,
    updated_at {timestamp} NOT NULL
);

CREATE UNIQUE INDEX jobs_pending_dedupe ON jobs (dedupe_key) WHERE state = 'pending' AND dedupe_key IS NOT NULL;

CREATE INDEX jobs_due ON jobs (state, run_at);

CREATE INDEX jobs_lease_expiry ON jobs (state, lease_expires_at)
