-- The connector's shared state (store/postgres). Times of the journal are
-- nanoseconds since 1970 (UTC), as package journal keeps them: timestamptz
-- holds microseconds only, and a round trip must give back what was given.

-- The association journal: one row per association; end_ns NULL while open.
CREATE TABLE journal_associations (
    id            bigserial PRIMARY KEY,
    agent_id      text   NOT NULL,
    agent_user_id text   NOT NULL,
    device_id     text   NOT NULL,
    desk_user_id  text   NOT NULL,
    start_ns      bigint NOT NULL,
    end_ns        bigint,
    ended_by      text   NOT NULL DEFAULT '',
    detail        text   NOT NULL DEFAULT '',
    CHECK (end_ns IS NULL OR end_ns >= start_ns)
);
-- At most one open association per agent and per desk.
CREATE UNIQUE INDEX journal_open_agent ON journal_associations (agent_user_id) WHERE end_ns IS NULL;
CREATE UNIQUE INDEX journal_open_desk ON journal_associations (device_id) WHERE end_ns IS NULL;
-- "Where was agent A", "who sat at desk X": by key, in start order.
CREATE INDEX journal_agent ON journal_associations (agent_user_id, start_ns, id);
CREATE INDEX journal_desk ON journal_associations (device_id, start_ns, id);
-- Pruning: the oldest ends first.
CREATE INDEX journal_ended ON journal_associations (end_ns, id) WHERE end_ns IS NOT NULL;

-- The desks' own forwarding while a guest sits there (hoteling.Remembered as JSON).
CREATE TABLE remembered (
    host_user_id text PRIMARY KEY,
    value        jsonb NOT NULL
);

-- What the connector last promised, per user and facet (the reconciler's encoding).
CREATE TABLE intents (
    user_id text  NOT NULL,
    facet   text  NOT NULL,
    value   bytea NOT NULL,
    PRIMARY KEY (user_id, facet)
);

-- Phone sync's UDP dialog snapshot, one per channel set (an active/standby pair).
CREATE TABLE sip_dialogs (
    channel_set text PRIMARY KEY,
    snapshot    bytea NOT NULL
);

-- Who may serve a channel set: the lease, with its fencing token. Only the
-- database's clock decides expiry.
CREATE TABLE lease (
    name       text        PRIMARY KEY,
    holder     text        NOT NULL,
    token      bigint      NOT NULL,
    expires_at timestamptz NOT NULL
);

-- The instances as they report themselves (heartbeats).
CREATE TABLE instances (
    id          text        PRIMARY KEY,
    channel_set text        NOT NULL,
    role        text        NOT NULL,
    scope       text[]      NOT NULL,
    admin       text        NOT NULL,
    health      text        NOT NULL,
    started     timestamptz NOT NULL,
    seen        timestamptz NOT NULL
);
