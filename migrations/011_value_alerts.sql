-- Alerts about a key's value held outside its reveal policy: someone who
-- may not reveal a live key registered or rotated to its value. The row
-- is written in the transaction that refuses the value (with the audit
-- event key.duplicate_value), and a job tells the key's owner and the
-- leads. Repeated tries by one person fold into one pending alert.
-- Nothing here holds the value or its fingerprint.
CREATE TABLE value_alerts (
    id                 bigserial PRIMARY KEY,
    key_id             uuid NOT NULL REFERENCES keys (id),
    attempted_by_email text NOT NULL,
    environment        text NOT NULL,
    attempts           integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL,
    last_at            timestamptz NOT NULL,
    -- Set when claimed for sending; cleared again if the send failed.
    sent_at            timestamptz
);
CREATE UNIQUE INDEX value_alerts_pending_key ON value_alerts (key_id, attempted_by_email) WHERE sent_at IS NULL;
