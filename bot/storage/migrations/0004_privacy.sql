-- Voicemail links handed out by a click on "Anhören": short-lived, single use, bound to the clicking user.
-- Only a hash of the link is stored: a copy of the database holds no playable link.
CREATE TABLE voicemail_links (
    token_hash TEXT PRIMARY KEY,
    case_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at {timestamp} NOT NULL,
    expires_at {timestamp} NOT NULL,
    used_at {timestamp}
);

CREATE INDEX voicemail_links_by_case ON voicemail_links (case_id);

CREATE INDEX voicemail_links_by_expiry ON voicemail_links (expires_at);

-- Erasures and retention purges: who, when, how much; never the phone number.
CREATE TABLE privacy_audit (
    id {id_pk},
    at {timestamp} NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    cases INTEGER NOT NULL,
    events INTEGER NOT NULL
);

-- Mails whose case was deleted (retention, erasure), as a hash of mailbox and message id: a later change of such a
-- mail in Outlook must not bring its case back.
CREATE TABLE forgotten_mails (
    mail_hash TEXT PRIMARY KEY,
    forgotten_at {timestamp} NOT NULL
);

CREATE INDEX jobs_finished ON jobs (state, updated_at);
