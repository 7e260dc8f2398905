//! Web console accounts, login sessions and per-address login lockouts.
//!
//! Hashing and token generation happen in `mgmt::auth`; this module stores what it is
//! given and enforces the rules that must hold under concurrency: the first admin can
//! be created only while none exists (checked and inserted in one write-locked
//! transaction), and a password change ends that admin's sessions in the same commit.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Store, StoreError, is_unique_violation, now_unix};

/// A console administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    pub id: i64,
    pub username: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub created_at: i64,
    pub password_changed_at: i64,
}

/// A login session to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// SHA-256 hex of the cookie token.
    pub token_hash: String,
    pub admin_id: i64,
    /// The CSRF token the browser must echo on every state-changing request.
    pub csrf_token: String,
    pub peer: String,
    pub expires_at: i64,
}

/// A stored session, with its admin's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSession {
    pub token_hash: String,
    pub admin_id: i64,
    pub username: String,
    pub csrf_token: String,
    pub peer: String,
    pub created_at: i64,
    pub last_seen: i64,
    pub expires_at: i64,
}

/// The failure record of one address after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    /// Failures counted in the current window.
    pub failures: u32,
    /// Unix seconds until which the address is locked out, if it is.
    pub locked_until: Option<i64>,
}

const ADMIN_COLUMNS: &str = "id, username, password_hash, created_at, password_changed_at";

fn admin_from_row(row: &SqliteRow) -> Result<Admin, StoreError> {
    Ok(Admin {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        created_at: row.try_get("created_at")?,
        password_changed_at: row.try_get("password_changed_at")?,
    })
}

fn check_username(username: &str) -> Result<(), StoreError> {
    let ok = !username.is_empty()
        && username.chars().count() <= 64
        && username == username.trim()
        && !username.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(
            "a user name is 1 to 64 characters without leading or trailing spaces".into(),
        ))
    }
}

impl Store {
    /// How many admins exist.
    pub async fn admin_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM admins")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Creates the first admin, only while there is none: the check and the insert
    /// share one write-locked transaction, so two racing first-run requests cannot both
    /// win. A second call is a [`StoreError::Conflict`].
    pub async fn create_first_admin(
        &self,
        username: &str,
        password_hash: &str,
    ) -> Result<Admin, StoreError> {
        check_username(username)?;
        let mut tx = self.begin_write().await?;
        let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM admins")
            .fetch_one(&mut *tx)
            .await?;
        if existing > 0 {
            return Err(StoreError::Conflict(
                "an administrator account already exists".into(),
            ));
        }
        let now = now_unix();
        let row = sqlx::query(&format!(
            "INSERT INTO admins (username, password_hash, created_at, password_changed_at) \
             VALUES (?, ?, ?, ?) RETURNING {ADMIN_COLUMNS}"
        ))
        .bind(username)
        .bind(password_hash)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let admin = admin_from_row(&row)?;
        tx.commit().await?;
        Ok(admin)
    }

    /// The admin with this user name (case-insensitive).
    pub async fn admin_by_username(&self, username: &str) -> Result<Option<Admin>, StoreError> {
        sqlx::query(&format!(
            "SELECT {ADMIN_COLUMNS} FROM admins WHERE username = ?"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(admin_from_row)
        .transpose()
    }

    /// The admin with this id.
    pub async fn admin(&self, id: i64) -> Result<Option<Admin>, StoreError> {
        sqlx::query(&format!("SELECT {ADMIN_COLUMNS} FROM admins WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(admin_from_row)
            .transpose()
    }

    /// Every admin, oldest first.
    pub async fn list_admins(&self) -> Result<Vec<Admin>, StoreError> {
        sqlx::query(&format!("SELECT {ADMIN_COLUMNS} FROM admins ORDER BY id"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(admin_from_row)
            .collect()
    }

    /// Replaces an admin's password hash and ends all of its sessions, except the one
    /// whose token hash is `keep` (the browser that changed it). `false` if no admin
    /// has this id.
    pub async fn set_admin_password(
        &self,
        id: i64,
        password_hash: &str,
        keep: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE admins SET password_hash = ?, password_changed_at = ? WHERE id = ?",
        )
        .bind(password_hash)
        .bind(now_unix())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM admin_sessions WHERE admin_id = ? AND token_hash IS NOT ?")
            .bind(id)
            .bind(keep)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores a new login session.
    pub async fn create_session(&self, new: NewSession) -> Result<(), StoreError> {
        let now = now_unix();
        let mut tx = self.begin_write().await?;
        // Expired sessions go whenever someone logs in: no timer needed.
        sqlx::query("DELETE FROM admin_sessions WHERE expires_at <= ?")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO admin_sessions \
             (token_hash, admin_id, csrf_token, peer, created_at, last_seen, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&new.token_hash)
        .bind(new.admin_id)
        .bind(&new.csrf_token)
        .bind(&new.peer)
        .bind(now)
        .bind(now)
        .bind(new.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict("session token collision".into())
            } else {
                StoreError::Database(e)
            }
        })?;
        tx.commit().await?;
        Ok(())
    }

    /// The unexpired session with this token hash, at `now`.
    pub async fn session(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<AdminSession>, StoreError> {
        let row = sqlx::query(
            "SELECT s.token_hash, s.admin_id, a.username, s.csrf_token, s.peer, \
             s.created_at, s.last_seen, s.expires_at \
             FROM admin_sessions s JOIN admins a ON a.id = s.admin_id \
             WHERE s.token_hash = ? AND s.expires_at > ?",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(AdminSession {
                token_hash: row.try_get("token_hash")?,
                admin_id: row.try_get("admin_id")?,
                username: row.try_get("username")?,
                csrf_token: row.try_get("csrf_token")?,
                peer: row.try_get("peer")?,
                created_at: row.try_get("created_at")?,
                last_seen: row.try_get("last_seen")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Records activity on a session and moves its expiry.
    pub async fn touch_session(
        &self,
        token_hash: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE admin_sessions SET last_seen = ?, expires_at = ? WHERE token_hash = ?")
            .bind(now)
            .bind(expires_at)
            .bind(token_hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends a session (logout); `false` if it did not exist.
    pub async fn delete_session(&self, token_hash: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM admin_sessions WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Unix seconds until which `peer` is locked out, if it is at `now`.
    pub async fn login_locked_until(
        &self,
        peer: &str,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let until: Option<Option<i64>> =
            sqlx::query_scalar("SELECT locked_until FROM login_failures WHERE peer = ?")
                .bind(peer)
                .fetch_optional(&self.pool)
                .await?;
        Ok(until.flatten().filter(|&t| t > now))
    }

    /// Counts a failed attempt from `peer`. Failures are counted in a window of
    /// `window` seconds from the first one; the `max_failures`-th failure in a window
    /// locks the address out for `window` seconds.
    pub async fn record_login_failure(
        &self,
        peer: &str,
        now: i64,
        max_failures: u32,
        window: i64,
    ) -> Result<Failures, StoreError> {
        let mut tx = self.begin_write().await?;
        let row: Option<(i64, i64, Option<i64>)> = sqlx::query_as(
            "SELECT failures, window_start, locked_until FROM login_failures WHERE peer = ?",
        )
        .bind(peer)
        .fetch_optional(&mut *tx)
        .await?;
        let (failures, window_start) = match row {
            // A lockout still running keeps counting in its window.
            Some((n, start, locked)) if now - start < window || locked.is_some_and(|t| t > now) => {
                (n + 1, start)
            }
            _ => (1, now),
        };
        let locked_until = (failures >= i64::from(max_failures)).then_some(now + window);
        sqlx::query(
            "INSERT INTO login_failures (peer, failures, window_start, locked_until) \
             VALUES (?, ?, ?, ?) ON CONFLICT (peer) DO UPDATE SET \
             failures = excluded.failures, window_start = excluded.window_start, \
             locked_until = excluded.locked_until",
        )
        .bind(peer)
        .bind(failures)
        .bind(window_start)
        .bind(locked_until)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Failures {
            failures: u32::try_from(failures).unwrap_or(u32::MAX),
            locked_until,
        })
    }

    /// Forgets the failures of `peer` (after a successful login).
    pub async fn clear_login_failures(&self, peer: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM login_failures WHERE peer = ?")
            .bind(peer)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Lifts every lockout (`punktfunk-host admin reset-password`); returns how many
    /// addresses had failures recorded.
    pub async fn clear_all_login_failures(&self) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM login_failures")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::temp_store;
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g";

    fn session(n: u8, admin_id: i64, expires_at: i64) -> NewSession {
        NewSession {
            token_hash: format!("{n:02x}").repeat(32),
            admin_id,
            csrf_token: "c".repeat(64),
            peer: "192.168.1.5".into(),
            expires_at,
        }
    }

    #[tokio::test]
    async fn first_admin_only_once() {
        let (_dir, store) = temp_store().await;
        assert_eq!(store.admin_count().await.unwrap(), 0);
        let admin = store.create_first_admin("alice", HASH).await.unwrap();
        assert_eq!(admin.username, "alice");
        let err = store.create_first_admin("bob", HASH).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        assert_eq!(store.admin_count().await.unwrap(), 1);
        assert_eq!(
            store.admin_by_username("ALICE").await.unwrap(),
            Some(admin.clone())
        );
        assert_eq!(store.admin(admin.id).await.unwrap(), Some(admin));
        assert_eq!(store.admin_by_username("bob").await.unwrap(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_first_admins_create_exactly_one() {
        let (_dir, store) = temp_store().await;
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (store, start) = (store.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    store.create_first_admin(&format!("admin{i}"), HASH).await
                })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => won += 1,
                Err(StoreError::Conflict(_)) => {}
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(won, 1);
        assert_eq!(store.admin_count().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn rejects_bad_usernames_and_non_argon2id_hashes() {
        let (_dir, store) = temp_store().await;
        for bad in ["", " alice", "a\u{7}b", &"x".repeat(65)] {
            let err = store.create_first_admin(bad, HASH).await.unwrap_err();
            assert!(matches!(err, StoreError::Invalid(_)), "{bad:?}: {err:?}");
        }
        let err = store
            .create_first_admin("alice", "plaintext")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("CHECK"), "{err}");
        assert_eq!(store.admin_count().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn sessions_expire_touch_and_end_on_password_change() {
        let (_dir, store) = temp_store().await;
        let admin = store.create_first_admin("alice", HASH).await.unwrap();
        let now = now_unix();
        store
            .create_session(session(1, admin.id, now + 100))
            .await
            .unwrap();
        store
            .create_session(session(2, admin.id, now + 100))
            .await
            .unwrap();
        store
            .create_session(session(3, admin.id, now - 1))
            .await
            .unwrap();
        let s1 = store.session(&"01".repeat(32), now).await.unwrap().unwrap();
        assert_eq!(s1.username, "alice");
        assert_eq!(s1.csrf_token, "c".repeat(64));
        // Expired sessions are not returned (and are purged at the next login).
        assert_eq!(store.session(&"03".repeat(32), now).await.unwrap(), None);
        assert_eq!(
            store.session(&"01".repeat(32), now + 100).await.unwrap(),
            None
        );

        store
            .touch_session(&"01".repeat(32), now + 50, now + 500)
            .await
            .unwrap();
        let s1 = store
            .session(&"01".repeat(32), now + 200)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((s1.last_seen, s1.expires_at), (now + 50, now + 500));

        // A password change keeps the changing browser's session, ends the others.
        assert!(
            store
                .set_admin_password(admin.id, HASH, Some(&"01".repeat(32)))
                .await
                .unwrap()
        );
        assert!(
            store
                .session(&"01".repeat(32), now)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .session(&"02".repeat(32), now)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .set_admin_password(admin.id, HASH, None)
                .await
                .unwrap()
        );
        assert!(
            store
                .session(&"01".repeat(32), now)
                .await
                .unwrap()
                .is_none()
        );
        assert!(!store.set_admin_password(999, HASH, None).await.unwrap());

        store
            .create_session(session(4, admin.id, now + 100))
            .await
            .unwrap();
        assert!(store.delete_session(&"04".repeat(32)).await.unwrap());
        assert!(!store.delete_session(&"04".repeat(32)).await.unwrap());
    }

    #[tokio::test]
    async fn failures_lock_out_after_the_limit_and_expire() {
        let (_dir, store) = temp_store().await;
        let peer = "192.168.1.9";
        let t0 = 1_800_000_000;
        for n in 1..=2 {
            let f = store
                .record_login_failure(peer, t0 + n, 3, 60)
                .await
                .unwrap();
            assert_eq!((f.failures, f.locked_until), (n as u32, None));
        }
        assert_eq!(store.login_locked_until(peer, t0 + 3).await.unwrap(), None);
        let f = store
            .record_login_failure(peer, t0 + 3, 3, 60)
            .await
            .unwrap();
        assert_eq!(f.locked_until, Some(t0 + 63));
        assert_eq!(
            store.login_locked_until(peer, t0 + 10).await.unwrap(),
            Some(t0 + 63)
        );
        // Another address is not affected.
        assert_eq!(
            store.login_locked_until("10.0.0.1", t0 + 10).await.unwrap(),
            None
        );
        // The lockout ends; the next failure starts a fresh window.
        assert_eq!(store.login_locked_until(peer, t0 + 63).await.unwrap(), None);
        let f = store
            .record_login_failure(peer, t0 + 200, 3, 60)
            .await
            .unwrap();
        assert_eq!((f.failures, f.locked_until), (1, None));
        store.clear_login_failures(peer).await.unwrap();
        let f = store
            .record_login_failure(peer, t0 + 201, 3, 60)
            .await
            .unwrap();
        assert_eq!(f.failures, 1);
        assert_eq!(store.clear_all_login_failures().await.unwrap(), 1);
    }
}
