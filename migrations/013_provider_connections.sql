-- Connections to providers' admin APIs, and the keys they list.
--
-- A connection holds an admin key, sealed under the master key like a key
-- value (store/sealed.go lists it, so master-key rotation re-wraps it).
-- Removing a connection shreds the envelope: the admin key is gone from
-- the database, the row stays for the audit trail and the inventory's
-- history.
CREATE TABLE provider_connections (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    provider              text NOT NULL CHECK (provider IN ('openai', 'anthropic')),
    name                  text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    admin_key_kek_id      text,
    admin_key_wrapped_dek bytea,
    admin_key_nonce       bytea,
    admin_key_ciphertext  bytea,
    created_by            bigint REFERENCES users (id),
    created_at            timestamptz NOT NULL,
    -- The last finished sync: when, ok or failed, the provider's error
    -- message when it failed (never the admin key), and what it saw.
    last_sync_at          timestamptz,
    last_sync_status      text CHECK (last_sync_status IN ('ok', 'failed')),
    last_sync_error       text NOT NULL DEFAULT '',
    last_sync_keys        integer NOT NULL DEFAULT 0,
    removed_at            timestamptz,
    removed_by            bigint REFERENCES users (id),
    CONSTRAINT provider_connections_envelope_check CHECK (
        (removed_at IS NULL AND admin_key_kek_id IS NOT NULL AND admin_key_wrapped_dek IS NOT NULL
            AND admin_key_nonce IS NOT NULL AND admin_key_ciphertext IS NOT NULL)
        OR (removed_at IS NOT NULL AND admin_key_wrapped_dek IS NULL AND admin_key_ciphertext IS NULL))
);
CREATE UNIQUE INDEX provider_connections_live_name_key ON provider_connections (lower(name)) WHERE removed_at IS NULL;
CREATE INDEX provider_connections_kek_idx ON provider_connections (admin_key_kek_id) WHERE removed_at IS NULL;

-- One row per key a connection has seen at the provider. Nothing here is
-- secret: the hint is the provider's own redacted form. Rows are never
-- deleted (usage and revoke results hang off id); a key gone from the
-- provider's list gets deleted_at.
CREATE TABLE provider_keys (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection_id    uuid NOT NULL REFERENCES provider_connections (id),
    provider_key_id  text NOT NULL,
    name             text NOT NULL DEFAULT '',
    hint             text NOT NULL DEFAULT '',
    -- The hint in keyledger's masked form (known prefix, "…", last 4),
    -- compared with keys.masked_hint; '' when the hint is too short to
    -- match on.
    match_hint       text NOT NULL DEFAULT '',
    project_id       text NOT NULL DEFAULT '',
    project_name     text NOT NULL DEFAULT '',
    status           text NOT NULL DEFAULT '',
    created_at       timestamptz,
    last_used_at     timestamptz,
    created_by       text NOT NULL DEFAULT '',
    owner_type       text NOT NULL DEFAULT '',
    owner_active     boolean NOT NULL DEFAULT true,
    first_seen_at    timestamptz NOT NULL,
    last_seen_at     timestamptz NOT NULL,
    deleted_at       timestamptz,
    -- The match with a registered key: matched (key_id set), ambiguous
    -- (several candidates, key_id NULL until an admin links one) or
    -- unmatched (a shadow key). linked_by is set when an admin chose the
    -- key; sync then leaves the link alone.
    key_id           uuid REFERENCES keys (id),
    match_state      text NOT NULL DEFAULT 'unmatched' CHECK (match_state IN ('matched', 'ambiguous', 'unmatched')),
    match_candidates integer NOT NULL DEFAULT 0,
    linked_by        bigint REFERENCES users (id),
    linked_at        timestamptz,
    UNIQUE (connection_id, provider_key_id),
    CHECK ((match_state = 'matched') = (key_id IS NOT NULL))
);
CREATE INDEX provider_keys_key_idx ON provider_keys (key_id) WHERE key_id IS NOT NULL;
CREATE INDEX provider_keys_match_hint_idx ON provider_keys (match_hint) WHERE deleted_at IS NULL;
CREATE INDEX provider_keys_live_idx ON provider_keys (connection_id, match_state) WHERE deleted_at IS NULL;
-- Matching looks keys up by provider and masked hint.
CREATE INDEX keys_provider_hint_idx ON keys (provider, masked_hint) WHERE archived_at IS NULL;
