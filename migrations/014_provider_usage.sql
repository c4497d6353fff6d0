-- Usage at the provider, spend alerts, and revoking at the provider.

-- Requests and tokens per provider key per UTC day, as the provider's
-- usage report gives them (OpenAI completions usage grouped by
-- api_key_id, Anthropic's messages usage report). The sync upserts the
-- last 30 days each run: the provider's latest numbers for a day win.
-- Keyed by the provider's key id, not provider_keys.id: a report may name
-- a key the list no longer shows.
CREATE TABLE provider_usage (
    connection_id   uuid NOT NULL REFERENCES provider_connections (id),
    provider_key_id text NOT NULL,
    day             date NOT NULL,
    requests        bigint NOT NULL DEFAULT 0 CHECK (requests >= 0),
    input_tokens    bigint NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens   bigint NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    synced_at       timestamptz NOT NULL,
    PRIMARY KEY (connection_id, provider_key_id, day)
);
CREATE INDEX provider_usage_day_idx ON provider_usage (day);

-- A usage day that broke the spend rule (keyledger.SpendRule). At most
-- one alert per key per usage day, and per key per day it was raised
-- (raised_on), so a late report for yesterday and today's spike do not
-- make two alerts in one day. The job claims sent_at before it sends and
-- clears it when the send fails.
CREATE TABLE spend_alerts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection_id   uuid NOT NULL REFERENCES provider_connections (id),
    provider_key_id text NOT NULL,
    day             date NOT NULL,
    raised_on       date NOT NULL,
    measure         text NOT NULL,
    requests        bigint NOT NULL,
    tokens          bigint NOT NULL,
    median_requests double precision NOT NULL,
    median_tokens   double precision NOT NULL,
    raised_at       timestamptz NOT NULL,
    sent_at         timestamptz,
    UNIQUE (connection_id, provider_key_id, day),
    UNIQUE (connection_id, provider_key_id, raised_on)
);
CREATE INDEX spend_alerts_pending_idx ON spend_alerts (id) WHERE sent_at IS NULL;

-- Revoked at the provider by keyledger (POST /keys/{id}/provider-revoke
-- or an offboarding item): when and by whom. A failed attempt leaves
-- these empty (it is only audited).
ALTER TABLE provider_keys
    ADD COLUMN revoked_at timestamptz,
    ADD COLUMN revoked_by bigint REFERENCES users (id);

-- Offboarding: "revoke at the provider" items for keys the departing
-- person created there (provider_keys.created_by is their email). Such
-- an item names a provider key; key_id is the linked registered key, if
-- any. The old uniqueness holds for every other kind; provider items are
-- unique per provider key.
ALTER TABLE offboarding_items DROP CONSTRAINT offboarding_items_kind_check;
ALTER TABLE offboarding_items ADD CONSTRAINT offboarding_items_kind_check
    CHECK (kind IN ('reassign', 'rotate', 'revoke', 'deactivate', 'provider_revoke'));
ALTER TABLE offboarding_items ADD COLUMN provider_key_ref bigint REFERENCES provider_keys (id);
ALTER TABLE offboarding_items ADD CONSTRAINT offboarding_items_provider_key_check
    CHECK ((kind = 'provider_revoke') = (provider_key_ref IS NOT NULL));
DROP INDEX offboarding_items_key;
CREATE UNIQUE INDEX offboarding_items_key ON offboarding_items (offboarding_id, kind, coalesce(key_id, '00000000-0000-0000-0000-000000000000'))
    WHERE provider_key_ref IS NULL;
CREATE UNIQUE INDEX offboarding_items_provider_key ON offboarding_items (offboarding_id, provider_key_ref)
    WHERE provider_key_ref IS NOT NULL;
CREATE INDEX provider_keys_created_by_idx ON provider_keys (lower(created_by)) WHERE deleted_at IS NULL AND revoked_at IS NULL;
