-- keyledger schema: users, environments, keys and their encrypted versions,
-- the append-only audit log and its hash chain, sessions, sign-in attempts,
-- and the keyring canaries.

CREATE TABLE users (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email          text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    name           text NOT NULL DEFAULT '',
    role           text NOT NULL CHECK (role IN ('admin', 'lead', 'member')),
    password_hash  text,
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deactivated')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deactivated_at timestamptz
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE environments (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL UNIQUE CHECK (name = lower(name) AND length(name) BETWEEN 1 AND 50),
    reveal_policy   text NOT NULL CHECK (reveal_policy IN ('any_user', 'owner_leads_admins')),
    reason_required boolean NOT NULL DEFAULT false,
    sensitive       boolean NOT NULL DEFAULT false,
    rotation_days   integer NOT NULL CHECK (rotation_days BETWEEN 1 AND 3650),
    position        integer NOT NULL DEFAULT 100,
    created_at      timestamptz NOT NULL DEFAULT now()
);
INSERT INTO environments (name, reveal_policy, reason_required, sensitive, rotation_days, position) VALUES
    ('development', 'any_user', false, false, 180, 10),
    ('staging', 'any_user', true, false, 90, 20),
    ('production', 'owner_leads_admins', true, true, 90, 30);

CREATE TABLE keys (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name             text NOT NULL,
    provider         text NOT NULL,
    project          text NOT NULL,
    environment_id   bigint NOT NULL REFERENCES environments (id),
    owner_id         bigint NOT NULL REFERENCES users (id),
    description      text NOT NULL DEFAULT '',
    scope            text NOT NULL DEFAULT '',
    masked_hint      text NOT NULL,
    -- keyed HMAC of the current value: finds duplicates without storing
    -- anything a dictionary attack could use.
    fingerprint      bytea NOT NULL,
    current_version  integer NOT NULL DEFAULT 1,
    rotation_days    integer CHECK (rotation_days BETWEEN 1 AND 3650),
    rotate_by        timestamptz NOT NULL,
    last_rotated_at  timestamptz NOT NULL DEFAULT now(),
    last_verified_at timestamptz,
    verify_result    text,
    verify_message   text NOT NULL DEFAULT '',
    created_by       bigint REFERENCES users (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_by       bigint REFERENCES users (id),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    archived_at      timestamptz
);
CREATE UNIQUE INDEX keys_live_name_key ON keys (project, environment_id, lower(name)) WHERE archived_at IS NULL;
CREATE INDEX keys_fingerprint_idx ON keys (fingerprint) WHERE archived_at IS NULL;
CREATE INDEX keys_owner_idx ON keys (owner_id) WHERE archived_at IS NULL;
CREATE INDEX keys_environment_name_idx ON keys (environment_id, lower(name), id) WHERE archived_at IS NULL;
CREATE INDEX keys_name_idx ON keys (lower(name), id) WHERE archived_at IS NULL;
CREATE INDEX keys_rotate_by_idx ON keys (rotate_by) WHERE archived_at IS NULL;

CREATE TABLE key_versions (
    key_id        uuid NOT NULL REFERENCES keys (id),
    version       integer NOT NULL CHECK (version >= 1),
    kek_id        text,
    wrapped_dek   bytea,
    nonce         bytea,
    ciphertext    bytea,
    masked_hint   text NOT NULL,
    created_by    bigint REFERENCES users (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    superseded_at timestamptz,
    destroy_after timestamptz,
    destroyed_at  timestamptz,
    PRIMARY KEY (key_id, version),
    -- A destroyed version has lost its DEK and ciphertext (crypto-shredding);
    -- a live one has all four envelope parts.
    CONSTRAINT key_versions_envelope_check CHECK (
        (destroyed_at IS NULL AND kek_id IS NOT NULL AND wrapped_dek IS NOT NULL AND nonce IS NOT NULL AND ciphertext IS NOT NULL)
        OR (destroyed_at IS NOT NULL AND wrapped_dek IS NULL AND ciphertext IS NULL))
);
CREATE INDEX key_versions_kek_idx ON key_versions (kek_id) WHERE destroyed_at IS NULL;

-- Secrets of the instance itself (fingerprint key, cookie signing key),
-- sealed under the master key like any value.
CREATE TABLE instance_secrets (
    name        text PRIMARY KEY,
    kek_id      text NOT NULL,
    wrapped_dek bytea NOT NULL,
    nonce       bytea NOT NULL,
    ciphertext  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One canary per master key: opened at startup to catch a wrong key before
-- anything is written under it.
CREATE TABLE keyring_check (
    kek_id     text PRIMARY KEY,
    canary     bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The audit log. Rows are inserted inside the transaction that acts, with
-- the id of that transaction (txid) so the chainer can tell when every
-- earlier transaction has finished.
CREATE TABLE audit_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    txid          xid8 NOT NULL DEFAULT pg_current_xact_id(),
    at            timestamptz NOT NULL DEFAULT date_trunc('milliseconds', clock_timestamp()),
    actor_id      bigint,
    actor_email   text NOT NULL DEFAULT '',
    action        text NOT NULL,
    key_id        uuid,
    key_name      text NOT NULL DEFAULT '',
    key_version   integer,
    subject_id    bigint,
    subject_email text NOT NULL DEFAULT '',
    environment   text NOT NULL DEFAULT '',
    ip            text NOT NULL DEFAULT '',
    user_agent    text NOT NULL DEFAULT '',
    reason        text NOT NULL DEFAULT '',
    details       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_txid_idx ON audit_events (txid, id);
CREATE INDEX audit_events_at_idx ON audit_events (at DESC, id DESC);
CREATE INDEX audit_events_key_idx ON audit_events (key_id, at DESC) WHERE key_id IS NOT NULL;
CREATE INDEX audit_events_actor_idx ON audit_events (actor_id, at DESC) WHERE actor_id IS NOT NULL;
CREATE INDEX audit_events_action_idx ON audit_events (action, at DESC);

-- The hash chain over audit events, appended by one chainer at a time in
-- (txid, id) order of finished transactions. Keeping it apart from the
-- events means a reveal never waits on a global lock: it only inserts.
CREATE TABLE audit_chain (
    seq        bigint PRIMARY KEY,
    event_id   bigint NOT NULL UNIQUE,
    event_txid xid8 NOT NULL,
    hash       bytea NOT NULL,
    chained_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION keyledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'keyledger: % on % refused: the audit log is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION keyledger_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION keyledger_append_only();
CREATE TRIGGER audit_chain_append_only BEFORE UPDATE OR DELETE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION keyledger_append_only();
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION keyledger_append_only();

-- Server-side sessions. The cookie holds a signed random id; only its
-- SHA-256 is stored, so a database reader cannot ride a session.
CREATE TABLE sessions (
    id_hash      bytea PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    ip           text NOT NULL DEFAULT '',
    user_agent   text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

-- Failed sign-ins for throttling, per account and per client address.
CREATE TABLE login_failures (
    id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at    timestamptz NOT NULL DEFAULT now(),
    email text NOT NULL,
    ip    text NOT NULL
);
CREATE INDEX login_failures_email_idx ON login_failures (email, at);
CREATE INDEX login_failures_ip_idx ON login_failures (ip, at);
