-- Which session enrolled the user's current second factor (the SHA-256 of
-- its id, as sessions.id_hash). A code from that factor does not count as
-- a step-up in that same session: a thief who held a fresh session for a
-- moment must not keep sensitive environments open with a device of their
-- own. NULL for factors enrolled before this column existed, and after
-- the factor is turned off or reset.
ALTER TABLE users ADD COLUMN totp_enrolled_session bytea;
