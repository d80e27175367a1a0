-- Recovery (issue 13). Where an interrupted catch-up resumes: the nextLink of the last delta page it completed,
-- replaced page by page and deleted when the pass ends (its deltaLink is then in delta_links).
CREATE TABLE delta_progress (
    mailbox TEXT PRIMARY KEY,
    next_link TEXT NOT NULL
);

-- The repair sweep walks the recently changed cases, newest first.
CREATE INDEX cases_by_update ON cases (updated_at);
