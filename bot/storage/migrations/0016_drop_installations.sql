-- Architecture step (issue 18). The bot wrote a row per team it was installed in and nobody read it: posting goes by
-- channel_links, and the team's service URL comes with each activity. The rows held tenant ids and conversation
-- references of no use to anyone; the table goes.
DROP TABLE installations;
