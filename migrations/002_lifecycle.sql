-- Key lifecycle: per-version fingerprints (for rollback and duplicate
-- checks), scheduled destruction of superseded versions, reminders, and
-- manual verification.

ALTER TABLE key_versions ADD COLUMN fingerprint bytea;
UPDATE key_versions v SET fingerprint = k.fingerprint
    FROM keys k WHERE k.id = v.key_id AND v.version = k.current_version;
CREATE INDEX key_versions_destroy_idx ON key_versions (destroy_after)
    WHERE destroyed_at IS NULL AND destroy_after IS NOT NULL;

ALTER TABLE keys
    ADD COLUMN last_reminded_at timestamptz,
    ADD COLUMN last_reminder    text,
    ADD COLUMN verified_by      bigint REFERENCES users (id);
CREATE INDEX keys_last_verified_idx ON keys (last_verified_at NULLS FIRST) WHERE archived_at IS NULL;
CREATE INDEX keys_verify_result_idx ON keys (verify_result) WHERE archived_at IS NULL;
CREATE INDEX key_versions_fingerprint_idx ON key_versions (fingerprint) WHERE destroyed_at IS NULL;
