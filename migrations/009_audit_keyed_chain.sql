-- Keyed audit chain (docs/audit.md).
--
-- Links made from now on are HMAC-SHA256 under a chain key, an instance
-- secret sealed under the master key, so someone with database access but
-- not the master key cannot recompute them after editing an event. Links
-- made before stay SHA-256 (format 1) and stay verifiable.
--
-- audit_chain.format says which a link is: 1 (SHA-256) or 2 (HMAC). The
-- format alone proves nothing (whoever can edit a link can edit its
-- format), so where the keyed part begins is recorded once, in
-- audit_chain_keying, with a MAC under the chain key: moving the start, or
-- flipping later links back to format 1, shows in `audit verify`. keyledger
-- writes that row itself, together with the chain key, on its first start
-- after this migration (SQL cannot compute the MAC).
ALTER TABLE audit_chain ADD COLUMN format smallint NOT NULL DEFAULT 1 CHECK (format IN (1, 2));

CREATE TABLE audit_chain_keying (
    one        boolean PRIMARY KEY DEFAULT true CHECK (one),
    keyed_from bigint NOT NULL CHECK (keyed_from >= 1),
    mac        bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER audit_chain_keying_append_only BEFORE UPDATE OR DELETE ON audit_chain_keying
    FOR EACH ROW EXECUTE FUNCTION keyledger_append_only();
CREATE TRIGGER audit_chain_keying_no_truncate BEFORE TRUNCATE ON audit_chain_keying
    FOR EACH STATEMENT EXECUTE FUNCTION keyledger_append_only();

-- A keyledger from before this migration still running during an upgrade
-- would append SHA-256 links past the keyed start; refuse them, so its
-- chainer fails (and retries) until the new one takes over. One check per
-- statement: the chainer appends a whole round in one INSERT.
CREATE FUNCTION keyledger_audit_chain_format() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_links n, audit_chain_keying k
               WHERE (n.format = 2) <> (n.seq >= k.keyed_from)) THEN
        RAISE EXCEPTION 'keyledger: audit chain link in the wrong format for its position (an older keyledger still running?)'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER audit_chain_format AFTER INSERT ON audit_chain
    REFERENCING NEW TABLE AS new_links
    FOR EACH STATEMENT EXECUTE FUNCTION keyledger_audit_chain_format();
