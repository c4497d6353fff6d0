-- Sign-in throttling per (account, address) pair, with a progressive
-- per-account delay and alerts to the admins (docs/security.md, "Sign-in
-- throttling").

-- The pair count ("this address, this account") is the first question of
-- every attempt.
CREATE INDEX login_failures_email_ip_idx ON login_failures (email, ip, at);

-- Addresses from which an account completed a sign-in: they skip the
-- account-wide delay, so a stranger guessing from elsewhere cannot keep
-- the owner out. One row per pair, refreshed at each sign-in.
CREATE TABLE login_known_addresses (
    email        text NOT NULL,
    ip           text NOT NULL,
    last_success timestamptz NOT NULL,
    PRIMARY KEY (email, ip)
);

-- "Account under attack" alerts: raised (and audited) in the transaction
-- that counts the failure crossing the threshold, at most once per account
-- per window; sent to the admins by a background job (sent_at).
CREATE TABLE account_alerts (
    email     text PRIMARY KEY,
    raised_at timestamptz NOT NULL,
    failures  integer NOT NULL,
    addresses integer NOT NULL,
    sent_at   timestamptz
);
CREATE INDEX account_alerts_unsent_idx ON account_alerts (raised_at) WHERE sent_at IS NULL;
