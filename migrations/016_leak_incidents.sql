-- Leak incidents (issue 15): a key version whose value is known to be out
-- in the open. Opened by a report (POST /leaks/new, /api/v1/leaks) or by
-- a duplicate registration from someone who may not reveal the key. The
-- key counts as compromised while one of its incidents is open. Nothing
-- here holds a value, a candidate or a fingerprint: the reported value is
-- matched and dropped in the request that carried it.
CREATE TABLE leak_incidents (
    id            bigserial PRIMARY KEY,
    key_id        uuid NOT NULL REFERENCES keys (id),
    version       integer NOT NULL,
    -- report | duplicate (passed as parameters, never literals in SQL).
    source        text NOT NULL,
    reported_by   bigint REFERENCES users (id),
    -- Where the value was seen: free text or a URL, as the reporter typed it.
    location      text NOT NULL DEFAULT '',
    opened_at     timestamptz NOT NULL,
    -- The two conditions that close an incident without a waiver.
    rotated_at    timestamptz,
    revoked_at    timestamptz,
    -- Set when the owner and leads were told; cleared when a send fails.
    notified_at   timestamptz,
    closed_at     timestamptz,
    -- resolved (rotated away and revoked) | waived
    close_reason  text,
    waive_reason  text NOT NULL DEFAULT '',
    closed_by     bigint REFERENCES users (id),
    FOREIGN KEY (key_id, version) REFERENCES key_versions (key_id, version),
    CHECK ((closed_at IS NULL) = (close_reason IS NULL))
);
-- One open incident per version: a second report adds to it.
CREATE UNIQUE INDEX leak_incidents_open_version ON leak_incidents (key_id, version) WHERE closed_at IS NULL;
CREATE INDEX leak_incidents_open_key ON leak_incidents (key_id) WHERE closed_at IS NULL;
CREATE INDEX leak_incidents_opened ON leak_incidents (opened_at DESC);
CREATE INDEX leak_incidents_unnotified ON leak_incidents (id) WHERE notified_at IS NULL;

-- Every step of an incident, in order: reported (each report), notified,
-- rotated, revoked, waived, closed. Each step is also an audit event;
-- this table is the incident's own view of them, kept in the transaction
-- that takes the step.
CREATE TABLE leak_incident_steps (
    id          bigserial PRIMARY KEY,
    incident_id bigint NOT NULL REFERENCES leak_incidents (id),
    at          timestamptz NOT NULL,
    step        text NOT NULL,
    actor_id    bigint REFERENCES users (id),
    actor_email text NOT NULL DEFAULT '',
    -- report | duplicate for a reported step (who may then see the incident).
    via         text NOT NULL DEFAULT '',
    note        text NOT NULL DEFAULT ''
);
CREATE INDEX leak_incident_steps_incident ON leak_incident_steps (incident_id, at, id);
CREATE INDEX leak_incident_steps_reporter ON leak_incident_steps (actor_id, at) WHERE step = 'reported';

-- Report attempts per person, for the rate limit (no value, no result).
CREATE TABLE leak_report_attempts (
    user_id bigint NOT NULL REFERENCES users (id),
    at      timestamptz NOT NULL
);
CREATE INDEX leak_report_attempts_user ON leak_report_attempts (user_id, at);
