-- The key list groups keys by name and project (one row per name and
-- project, a column per environment). These indexes hold the group key
-- in list order, so a page of groups is an index-only walk that stops at
-- the page, and counting groups and keys is one index-only pass: per
-- environment (the usual filter) and over all live keys.
CREATE INDEX keys_env_group_idx ON keys (environment_id, name_key, project) WHERE archived_at IS NULL;
CREATE INDEX keys_group_idx ON keys (name_key, project) WHERE archived_at IS NULL;
