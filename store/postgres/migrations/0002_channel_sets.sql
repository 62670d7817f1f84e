-- Instances with different channel sets (scale-out shards: different
-- scopes, one database) share the journal for reading, but each keeps its
-- own promises: what it owes a user, the desks whose forwarding it
-- remembers, and the open associations it reconciles at start. An
-- active/standby pair shares its channel set, and so all of these.
-- The intents, remembered desks and open associations written before this
-- migration are claimed by the instance that applies it (migrate.go:
-- claimUnpartitioned); ended associations keep none.

ALTER TABLE intents ADD COLUMN channel_set text NOT NULL DEFAULT '';
ALTER TABLE intents DROP CONSTRAINT intents_pkey;
ALTER TABLE intents ADD PRIMARY KEY (channel_set, user_id, facet);

ALTER TABLE remembered ADD COLUMN channel_set text NOT NULL DEFAULT '';
ALTER TABLE remembered DROP CONSTRAINT remembered_pkey;
ALTER TABLE remembered ADD PRIMARY KEY (channel_set, host_user_id);

-- Who opened the association: its channel set reconciles it.
ALTER TABLE journal_associations ADD COLUMN channel_set text NOT NULL DEFAULT '';
CREATE INDEX journal_open_channel_set ON journal_associations (channel_set, id) WHERE end_ns IS NULL;
