-- Automated rotation at the provider (OpenAI service-account keys, see
-- docs/providers.md "Rotation at OpenAI"). One row per key an admin or
-- lead turned it on (or off) for. Nothing here is secret: the new value
-- is sealed as a key version like any other.
CREATE TABLE key_provider_rotations (
    key_id          uuid PRIMARY KEY REFERENCES keys (id),
    enabled         boolean NOT NULL,
    changed_by      bigint REFERENCES users (id),
    changed_at      timestamptz NOT NULL,
    -- The last attempt (the job or "Rotate now at OpenAI"): when, and why
    -- it failed in plain words ('' when it rotated).
    last_attempt_at timestamptz,
    last_error      text NOT NULL DEFAULT '',
    last_rotated_at timestamptz
);
CREATE INDEX key_provider_rotations_enabled_idx ON key_provider_rotations (key_id) WHERE enabled;

-- A rotation at the provider marks the provider key that carried the old
-- value: revoke it there once revoke_after (the old version's grace
-- period) has passed. rotated_key is the key it was rotated away from.
-- A rollback to that version clears revoke_after.
ALTER TABLE provider_keys
    ADD COLUMN revoke_after timestamptz,
    ADD COLUMN rotated_key uuid REFERENCES keys (id);
CREATE INDEX provider_keys_revoke_after_idx ON provider_keys (revoke_after)
    WHERE revoke_after IS NOT NULL AND revoked_at IS NULL;
