-- Change epochs: numbers that move whenever something a page shows may
-- have changed. Every browser request reads them with its session, in
-- the same statement, so the server can keep what it built for a page
-- (the key list's rendered bodies, the dashboard and rotation overview)
-- and still show each request every write committed before it asked:
-- something kept is used only when it was built at the epoch the request
-- read or a later one (store/epochcache.go, web/keys.go,
-- docs/performance.md).
--
-- list_epoch moves with what the key list shows: keys, environments,
-- users and leak incidents. activity_epoch moves with the rest of what
-- the dashboard shows: audit events (a reveal makes a key no longer
-- "stale") and the provider inventory. They are apart so that reveals,
-- the busiest writes, do not throw away kept key lists.
--
-- An epoch is the sum of 16 counters, each moved by a deferred trigger:
-- it moves in the writing transaction (a reader never sees the new epoch
-- before the write it stands for) and only at commit, after every other
-- lock the transaction takes, so it cannot take part in a deadlock. A
-- transaction moves one counter of an epoch once, however many rows it
-- changes (a transaction-local setting remembers it did). The counter is
-- chosen by the server process, so concurrent writers mostly update
-- different rows: with one row, every list write waited for the previous
-- one's commit (4 ms each while seeding 10,000 keys in parallel).
CREATE TABLE list_epoch (
    shard smallint PRIMARY KEY CHECK (shard BETWEEN 0 AND 15),
    epoch bigint NOT NULL
) WITH (fillfactor = 10);
INSERT INTO list_epoch (shard, epoch) SELECT s, 0 FROM generate_series(0, 15) s;

CREATE TABLE activity_epoch (
    shard smallint PRIMARY KEY CHECK (shard BETWEEN 0 AND 15),
    epoch bigint NOT NULL
) WITH (fillfactor = 10);
INSERT INTO activity_epoch (shard, epoch) SELECT s, 0 FROM generate_series(0, 15) s;

CREATE FUNCTION keyledger_move_list_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('keyledger.list_epoch_moved', true), '') <> 'on' THEN
        UPDATE list_epoch SET epoch = epoch + 1 WHERE shard = pg_backend_pid() % 16;
        PERFORM set_config('keyledger.list_epoch_moved', 'on', true);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION keyledger_move_activity_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('keyledger.activity_epoch_moved', true), '') <> 'on' THEN
        UPDATE activity_epoch SET epoch = epoch + 1 WHERE shard = pg_backend_pid() % 16;
        PERFORM set_config('keyledger.activity_epoch_moved', 'on', true);
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER keys_list_epoch AFTER INSERT OR UPDATE OR DELETE ON keys
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION keyledger_move_list_epoch();
CREATE CONSTRAINT TRIGGER environments_list_epoch AFTER INSERT OR UPDATE OR DELETE ON environments
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION keyledger_move_list_epoch();
CREATE CONSTRAINT TRIGGER users_list_epoch AFTER INSERT OR UPDATE OR DELETE ON users
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION keyledger_move_list_epoch();
CREATE CONSTRAINT TRIGGER leak_incidents_list_epoch AFTER INSERT OR UPDATE OR DELETE ON leak_incidents
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION keyledger_move_list_epoch();

CREATE CONSTRAINT TRIGGER audit_events_activity_epoch AFTER INSERT ON audit_events
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION keyledger_move_activity_epoch();
CREATE CONSTRAINT TRIGGER provider_keys_activity_epoch AFTER INSERT OR UPDATE OR DELETE ON provider_keys
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION keyledger_move_activity_epoch();
CREATE CONSTRAINT TRIGGER provider_connections_activity_epoch AFTER INSERT OR UPDATE OR DELETE ON provider_connections
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION keyledger_move_activity_epoch();
