-- Key names are unique after Unicode normalization, not only after
-- lower-casing: "ｏｐｅｎａｉ" (full-width), "openai" with a zero-width space
-- in it, and "OpenAI" are one name in a project and environment.
--
-- keyledger_name_key drops format characters (Unicode category Cf:
-- zero-width spaces and joiners, bidi controls, the BOM, soft hyphens; the
-- same table as Go's unicode.Cf) and Hangul fillers, normalizes to NFKC
-- and lower-cases. New names cannot contain those characters (the root
-- package refuses them); dropping them here covers rows stored before.
-- The body is SQL-standard (RETURN), so it is parsed once here and a
-- restore does not depend on search_path.
CREATE FUNCTION keyledger_name_key(name text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN lower(normalize(regexp_replace(name,
        '[\u00AD\u0600-\u0605\u061C\u06DD\u070F\u0890-\u0891\u08E2\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u206F\uFEFF\uFFF9-\uFFFB\U000110BD\U000110CD\U00013430-\U0001343F\U0001BCA0-\U0001BCA3\U0001D173-\U0001D17A\U000E0001\U000E0020-\U000E007F\u115F\u1160\u3164\uFFA0]',
        '', 'g'), NFKC));

-- The list's sort key (migration 005) becomes the normalized name; its
-- indexes go with the old column and are made again, unchanged.
ALTER TABLE keys DROP COLUMN name_key;
ALTER TABLE keys ADD COLUMN name_key text GENERATED ALWAYS AS (keyledger_name_key(name)) STORED;
CREATE INDEX keys_env_name_key_idx ON keys (environment_id, name_key, id) WHERE archived_at IS NULL;
CREATE INDEX keys_name_key_idx ON keys (name_key, id) WHERE archived_at IS NULL;

-- Live keys stored before this migration may already collide under the
-- new rule. They keep working, names untouched: each gets a number
-- (0 for the first registered, 1, 2… for later look-alikes) that the
-- unique index includes. New keys get 0, so a new look-alike of any live
-- key is refused. Archiving a look-alike ends the clash for good.
ALTER TABLE keys ADD COLUMN name_clash integer NOT NULL DEFAULT 0;
UPDATE keys k SET name_clash = d.n
FROM (SELECT id, row_number() OVER (PARTITION BY project, environment_id, name_key ORDER BY created_at, id) - 1 AS n
      FROM keys WHERE archived_at IS NULL) d
WHERE d.id = k.id AND d.n > 0;

-- Same name as before, so conflicts are still recognised by it; project
-- still leads, for the project list's skip scan.
DROP INDEX keys_live_name_key;
CREATE UNIQUE INDEX keys_live_name_key ON keys (project, environment_id, name_key, name_clash) WHERE archived_at IS NULL;
