-- punktfunk-host store, schema version 2: the web console's accounts, login sessions
-- and login lockouts.

-- Console administrators. `password_hash` is an Argon2id PHC string
-- ($argon2id$v=19$m=...,t=...,p=...$salt$hash); plain passwords are never stored.
-- Usernames compare case-insensitively so "Admin" and "admin" cannot both exist.
CREATE TABLE admins (
    id                  INTEGER PRIMARY KEY,
    username            TEXT    NOT NULL UNIQUE COLLATE NOCASE
                        CHECK (length(username) BETWEEN 1 AND 64),
    password_hash       TEXT    NOT NULL CHECK (password_hash GLOB '$argon2id$*'),
    created_at          INTEGER NOT NULL,   -- unix seconds
    password_changed_at INTEGER NOT NULL    -- unix seconds
) STRICT;

-- Logged-in browser sessions. The cookie carries a random token; only its SHA-256 is
-- stored, so a copy of the database does not let anyone log in. Deleting an admin or
-- changing the password (which deletes its rows) logs every browser out.
CREATE TABLE admin_sessions (
    token_hash TEXT    PRIMARY KEY
               CHECK (length(token_hash) = 64 AND token_hash NOT GLOB '*[^0-9a-f]*'),
    admin_id   INTEGER NOT NULL REFERENCES admins (id) ON DELETE CASCADE,
    csrf_token TEXT    NOT NULL CHECK (length(csrf_token) = 64),
    peer       TEXT    NOT NULL,            -- the address that logged in
    created_at INTEGER NOT NULL,            -- unix seconds
    last_seen  INTEGER NOT NULL,            -- unix seconds
    expires_at INTEGER NOT NULL             -- unix seconds; idle and absolute limits
) STRICT, WITHOUT ROWID;

CREATE INDEX admin_sessions_by_admin ON admin_sessions (admin_id);

-- Failed logins (and setup-code guesses) per client address, so a lockout survives a
-- restart of the service.
CREATE TABLE login_failures (
    peer         TEXT    PRIMARY KEY,       -- IP address as text
    failures     INTEGER NOT NULL CHECK (failures >= 0),
    window_start INTEGER NOT NULL,          -- unix seconds of the first counted failure
    locked_until INTEGER                    -- unix seconds, NULL when not locked
) STRICT, WITHOUT ROWID;
