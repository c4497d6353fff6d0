-- Audit chain epochs: the chain across a restore onto another Postgres server.
--
-- The chainer orders events by the id of the transaction that wrote them
-- (audit_events.txid). A logical dump carries those ids as data, but a new
-- Postgres server starts its transaction counter near zero, so after a
-- restore there every new event had a smaller txid than the restored ones
-- and was never chained. An epoch is one server's stretch of the log: the
-- events with an id above after_event_id (and up to the next epoch's) were
-- written by the server whose pg_control_system().system_identifier is
-- cluster. The chain takes epochs in order and, within one, (txid, id)
-- order. keyledger starts a new epoch when it first connects to a server
-- other than the last epoch's; nothing else writes here.
CREATE TABLE audit_epochs (
    epoch          integer PRIMARY KEY,
    cluster        bigint NOT NULL,
    after_event_id bigint NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER audit_epochs_append_only BEFORE UPDATE OR DELETE ON audit_epochs
    FOR EACH ROW EXECUTE FUNCTION keyledger_append_only();
CREATE TRIGGER audit_epochs_no_truncate BEFORE TRUNCATE ON audit_epochs
    FOR EACH STATEMENT EXECUTE FUNCTION keyledger_append_only();

-- Every event so far belongs to the server this runs on.
INSERT INTO audit_epochs (epoch, cluster, after_event_id)
    SELECT 1, system_identifier, 0 FROM pg_control_system();
