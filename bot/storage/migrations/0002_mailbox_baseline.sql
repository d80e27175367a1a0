-- When Rufpool started watching each mailbox: older mail it has never seen is history, not work.
CREATE TABLE mailbox_baselines (
    mailbox TEXT PRIMARY KEY,
    watched_since {timestamp} NOT NULL
);
