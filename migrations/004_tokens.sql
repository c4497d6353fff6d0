-- Personal access tokens for the JSON API and the command-line client, and
-- the per-environment switch for revealing with a token.

CREATE TABLE api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL,
    -- SHA-256 of the whole token: tokens are 256-bit random, so a plain
    -- hash is enough and lookups stay one index probe.
    token_hash   bytea NOT NULL UNIQUE,
    -- The first characters after the prefix, to tell tokens apart in lists.
    hint         text NOT NULL,
    scopes       text[] NOT NULL CHECK (scopes <@ ARRAY['read', 'reveal', 'write']::text[] AND cardinality(scopes) > 0),
    created_by   bigint REFERENCES users (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    last_used_ip text NOT NULL DEFAULT ''
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

-- Revealing a sensitive environment's keys with a token skips the step-up
-- a browser session needs, so it is an explicit admin decision. Off by
-- default everywhere (it only matters once an environment is sensitive),
-- so marking an environment sensitive never leaves token reveals on by
-- accident.
ALTER TABLE environments ADD COLUMN allow_token_reveal boolean NOT NULL DEFAULT false;
