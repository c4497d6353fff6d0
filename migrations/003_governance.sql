-- Team governance: frozen users, two-factor sign-in, set-password links,
-- per-role policies, session step-up, and the offboarding checklist.

ALTER TABLE users DROP CONSTRAINT users_status_check;
ALTER TABLE users ADD CONSTRAINT users_status_check CHECK (status IN ('active', 'frozen', 'deactivated'));
ALTER TABLE users
    ADD COLUMN totp_kek_id      text,
    ADD COLUMN totp_wrapped_dek bytea,
    ADD COLUMN totp_nonce       bytea,
    ADD COLUMN totp_ciphertext  bytea,
    ADD COLUMN totp_enabled_at  timestamptz,
    -- The last TOTP time step accepted: a code is good once.
    ADD COLUMN totp_last_step   bigint NOT NULL DEFAULT 0,
    ADD COLUMN password_changed_at timestamptz;

-- Recovery codes, keyed-hashed with an instance secret: the database alone
-- cannot test guesses against them.
CREATE TABLE recovery_codes (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id   bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at   timestamptz
);
CREATE INDEX recovery_codes_user_idx ON recovery_codes (user_id) WHERE used_at IS NULL;

-- One-time set-password links an admin hands to a new user.
CREATE TABLE password_links (
    token_hash bytea PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_by bigint REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);

CREATE TABLE role_policies (
    role         text PRIMARY KEY CHECK (role IN ('admin', 'lead', 'member')),
    require_totp boolean NOT NULL DEFAULT false
);
INSERT INTO role_policies (role) VALUES ('admin'), ('lead'), ('member');

ALTER TABLE sessions
    -- Signed in with the password, two-factor code still to come.
    ADD COLUMN pending_totp boolean NOT NULL DEFAULT false,
    -- When the person last proved themselves (password or code); reveals in
    -- sensitive environments need this to be recent.
    ADD COLUMN step_up_at timestamptz;
UPDATE sessions SET step_up_at = created_at;

CREATE TABLE offboardings (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id),
    started_by   bigint REFERENCES users (id),
    started_at   timestamptz NOT NULL DEFAULT now(),
    frozen       boolean NOT NULL DEFAULT false,
    note         text NOT NULL DEFAULT '',
    completed_at timestamptz,
    completed_by bigint REFERENCES users (id)
);
-- One open checklist per person.
CREATE UNIQUE INDEX offboardings_open_user_key ON offboardings (user_id) WHERE completed_at IS NULL;

CREATE TABLE offboarding_items (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    offboarding_id bigint NOT NULL REFERENCES offboardings (id),
    kind           text NOT NULL CHECK (kind IN ('reassign', 'rotate', 'revoke', 'deactivate')),
    key_id         uuid REFERENCES keys (id),
    key_name       text NOT NULL DEFAULT '',
    environment    text NOT NULL DEFAULT '',
    -- Why the item exists, e.g. "revealed version 2 on 2026-11-20".
    why            text NOT NULL DEFAULT '',
    status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done', 'waived')),
    resolution     text NOT NULL DEFAULT '',
    resolved_by    bigint REFERENCES users (id),
    resolved_at    timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (status = 'open' OR resolved_at IS NOT NULL)
);
CREATE UNIQUE INDEX offboarding_items_key ON offboarding_items (offboarding_id, kind, coalesce(key_id, '00000000-0000-0000-0000-000000000000'));
CREATE INDEX offboarding_items_key_idx ON offboarding_items (key_id) WHERE status = 'open';

-- "What has this person seen" reads reveals and exports by actor.
CREATE INDEX audit_events_actor_action_idx ON audit_events (actor_id, action, at DESC) WHERE key_id IS NOT NULL;
