-- Per call event: the caller exactly as the mail wrote it (kept only for numbers phonenumbers deems invalid, which
-- are shown as written) and which of the line's numbers was called.
ALTER TABLE events ADD COLUMN caller_as_written TEXT;
ALTER TABLE events ADD COLUMN called_number TEXT;
