-- Outlook's read state of each mail, kept like its flag: what was last read from Graph and what the bot last wrote
-- (or took in from Outlook), for echo suppression and reconciliation. 1 = read, 0 = unread, NULL = not known yet.
ALTER TABLE mails ADD COLUMN observed_read INTEGER;
ALTER TABLE mails ADD COLUMN written_read INTEGER;
