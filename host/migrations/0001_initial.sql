-- punktfunk-host store, schema version 1.
--
-- Migrations are embedded into the binary (sqlx::migrate!) and applied in order at
-- startup. Never edit a migration that has shipped: sqlx checksums applied migrations
-- and refuses to open a database whose history does not match. Add a new file instead.
--
-- Tables are STRICT so a wrongly typed bind fails loudly instead of being stored as
-- whatever affinity SQLite picks.

-- Paired clients. `fingerprint` is the lowercase hex SHA-256 of the client
-- certificate's DER encoding; it is how a TLS peer is matched to its pairing record,
-- so it is unique and its spelling is pinned (64 lowercase hex digits) to stop an
-- upper-case duplicate from slipping past the UNIQUE constraint.
CREATE TABLE clients (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    cert_pem    TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL UNIQUE
                CHECK (length(fingerprint) = 64 AND fingerprint NOT GLOB '*[^0-9a-f]*'),
    protocol    TEXT    NOT NULL CHECK (protocol IN ('gamestream', 'native')),
    paired_at   INTEGER NOT NULL,  -- unix seconds
    last_seen   INTEGER            -- unix seconds, NULL until the first session
) STRICT;

-- User-defined apps. GameStream clients cache app ids, so ids must stay stable and
-- never be reused (AUTOINCREMENT guarantees that even after deletes) and must never
-- collide with the built-in apps the host synthesises (Desktop = 1, anything below
-- 1000 is reserved). The sequence is seeded so the first user app gets id 1000, and
-- the CHECK rejects anything that would land in the reserved range regardless.
CREATE TABLE apps (
    id         INTEGER PRIMARY KEY AUTOINCREMENT CHECK (id >= 1000),
    title      TEXT    NOT NULL UNIQUE CHECK (length(title) > 0),
    command    TEXT,               -- NULL: nothing to launch (e.g. stream the desktop)
    box_art    BLOB,               -- PNG bytes, NULL: use the default art
    created_at INTEGER NOT NULL,   -- unix seconds
    updated_at INTEGER NOT NULL    -- unix seconds
) STRICT;

INSERT INTO sqlite_sequence (name, seq) VALUES ('apps', 999);

-- Host settings as JSON-encoded values, so new settings need no migration.
CREATE TABLE settings (
    key        TEXT    PRIMARY KEY,
    value      TEXT    NOT NULL CHECK (json_valid(value)),
    updated_at INTEGER NOT NULL    -- unix seconds
) STRICT, WITHOUT ROWID;
