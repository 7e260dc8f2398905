//! Paired clients: who may stream from this host, keyed by certificate fingerprint.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Store, StoreError, now_unix};

/// Which protocol a client paired through. Stored as text so the database stays
/// readable with the `sqlite3` shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Moonlight-compatible GameStream pairing (PIN + certificate exchange).
    GameStream,
    /// punktfunk's native protocol.
    Native,
}

impl Protocol {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::GameStream => "gamestream",
            Protocol::Native => "native",
        }
    }

    /// Parses the stored spelling; `None` for anything else.
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "gamestream" => Some(Protocol::GameStream),
            "native" => Some(Protocol::Native),
            _ => None,
        }
    }
}

/// A pairing request to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewClient {
    pub name: String,
    pub cert_pem: String,
    /// Lowercase hex SHA-256 of the certificate DER (64 characters), computed by the
    /// caller from the same certificate as `cert_pem`.
    pub fingerprint: String,
    pub protocol: Protocol,
}

/// A paired client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: i64,
    pub name: String,
    pub cert_pem: String,
    pub fingerprint: String,
    pub protocol: Protocol,
    /// Unix seconds of the first pairing of this certificate.
    pub paired_at: i64,
    /// Unix seconds of the last [`Store::touch_client`], if any.
    pub last_seen: Option<i64>,
}

const COLUMNS: &str = "id, name, cert_pem, fingerprint, protocol, paired_at, last_seen";

fn from_row(row: &SqliteRow) -> Result<Client, StoreError> {
    let protocol: String = row.try_get("protocol")?;
    Ok(Client {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        cert_pem: row.try_get("cert_pem")?,
        fingerprint: row.try_get("fingerprint")?,
        protocol: Protocol::parse(&protocol)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown client protocol {protocol:?}")))?,
        paired_at: row.try_get("paired_at")?,
        last_seen: row.try_get("last_seen")?,
    })
}

/// Rejects anything but 64 lowercase hex digits: a differently spelled fingerprint of
/// the same certificate would otherwise slip past the UNIQUE constraint and never match
/// a lookup. (The schema enforces the same rule; this gives a readable error.)
fn check_fingerprint(fingerprint: &str) -> Result<(), StoreError> {
    let ok = fingerprint.len() == 64
        && fingerprint
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "client fingerprint must be 64 lowercase hex digits, got {fingerprint:?}"
        )))
    }
}

impl Store {
    /// Records a pairing. Re-pairing a known certificate (same fingerprint) is not an
    /// error: the name and PEM are refreshed and the existing row (same id, original
    /// `paired_at` and protocol) is returned, so a retried pairing never duplicates.
    pub async fn add_client(&self, new: NewClient) -> Result<Client, StoreError> {
        check_fingerprint(&new.fingerprint)?;
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO clients (name, cert_pem, fingerprint, protocol, paired_at) \
             VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (fingerprint) DO UPDATE \
             SET name = excluded.name, cert_pem = excluded.cert_pem \
             RETURNING {COLUMNS}"
        ))
        .bind(&new.name)
        .bind(&new.cert_pem)
        .bind(&new.fingerprint)
        .bind(new.protocol.as_str())
        .bind(now_unix())
        .fetch_one(&mut *tx)
        .await?;
        let client = from_row(&row)?;
        tx.commit().await?;
        Ok(client)
    }

    /// The client holding the certificate with this fingerprint.
    pub async fn client_by_fingerprint(
        &self,
        fingerprint: &str,
    ) -> Result<Option<Client>, StoreError> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM clients WHERE fingerprint = ?"
        ))
        .bind(fingerprint)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    /// All paired clients, oldest pairing first.
    pub async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM clients ORDER BY paired_at, id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(from_row)
        .collect()
    }

    /// Renames a client; `false` if no client has this id.
    pub async fn rename_client(&self, id: i64, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE clients SET name = ? WHERE id = ?")
            .bind(name)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Unpairs a client; `false` if no client has this id.
    pub async fn remove_client(&self, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM clients WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Unpairs the client holding this certificate; `false` if none does.
    pub async fn remove_client_by_fingerprint(
        &self,
        fingerprint: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM clients WHERE fingerprint = ?")
            .bind(fingerprint)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that the client with this fingerprint was seen at `now` (unix seconds).
    /// An unknown fingerprint is a no-op: a client unpaired mid-session is not an error.
    pub async fn touch_client(&self, fingerprint: &str, now: i64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE clients SET last_seen = ? WHERE fingerprint = ?")
            .bind(now)
            .bind(fingerprint)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::temp_store;
    use super::*;

    fn fp(n: u32) -> String {
        format!("{n:064x}")
    }

    fn new(name: &str, n: u32, protocol: Protocol) -> NewClient {
        NewClient {
            name: name.into(),
            cert_pem: format!("-----BEGIN CERTIFICATE-----\n{n}\n-----END CERTIFICATE-----\n"),
            fingerprint: fp(n),
            protocol,
        }
    }

    #[test]
    fn protocol_roundtrip() {
        for p in [Protocol::GameStream, Protocol::Native] {
            assert_eq!(Protocol::parse(p.as_str()), Some(p));
        }
        assert_eq!(Protocol::parse("GameStream"), None);
    }

    #[tokio::test]
    async fn add_find_list_rename_remove() {
        let (_dir, store) = temp_store().await;
        let a = store
            .add_client(new("deck", 1, Protocol::GameStream))
            .await
            .unwrap();
        let b = store
            .add_client(new("phone", 2, Protocol::Native))
            .await
            .unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(a.name, "deck");
        assert_eq!(a.fingerprint, fp(1));
        assert_eq!(b.protocol, Protocol::Native);
        assert_eq!(a.last_seen, None);
        assert!((a.paired_at - now_unix()).abs() < 60);

        assert_eq!(
            store.client_by_fingerprint(&fp(1)).await.unwrap(),
            Some(a.clone())
        );
        assert_eq!(store.client_by_fingerprint(&fp(3)).await.unwrap(), None);
        assert_eq!(
            store.list_clients().await.unwrap(),
            vec![a.clone(), b.clone()]
        );

        assert!(store.rename_client(a.id, "steam deck").await.unwrap());
        assert!(!store.rename_client(9999, "nobody").await.unwrap());
        let renamed = store.client_by_fingerprint(&fp(1)).await.unwrap().unwrap();
        assert_eq!(renamed.name, "steam deck");

        store.touch_client(&fp(2), 1_800_000_000).await.unwrap();
        store.touch_client(&fp(7), 1_800_000_000).await.unwrap(); // unknown: no-op
        let seen = store.client_by_fingerprint(&fp(2)).await.unwrap().unwrap();
        assert_eq!(seen.last_seen, Some(1_800_000_000));

        assert!(store.remove_client(a.id).await.unwrap());
        assert!(!store.remove_client(a.id).await.unwrap());
        assert!(store.remove_client_by_fingerprint(&fp(2)).await.unwrap());
        assert!(!store.remove_client_by_fingerprint(&fp(2)).await.unwrap());
        assert!(store.list_clients().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn repairing_same_cert_updates_in_place() {
        let (_dir, store) = temp_store().await;
        let first = store
            .add_client(new("old", 5, Protocol::GameStream))
            .await
            .unwrap();
        let mut again = new("new name", 5, Protocol::GameStream);
        again.cert_pem = "renewed pem".into();
        let second = store.add_client(again).await.unwrap();
        assert_eq!(second.id, first.id);
        assert_eq!(second.paired_at, first.paired_at);
        assert_eq!(second.name, "new name");
        assert_eq!(second.cert_pem, "renewed pem");
        assert_eq!(store.list_clients().await.unwrap(), vec![second]);
    }

    #[tokio::test]
    async fn list_orders_by_pairing_time() {
        let (_dir, store) = temp_store().await;
        let late = store
            .add_client(new("late", 1, Protocol::Native))
            .await
            .unwrap();
        let early = store
            .add_client(new("early", 2, Protocol::Native))
            .await
            .unwrap();
        sqlx::query("UPDATE clients SET paired_at = 100 WHERE id = ?")
            .bind(early.id)
            .execute(&store.pool)
            .await
            .unwrap();
        let names: Vec<_> = store
            .list_clients()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["early", "late"]);
        assert!(late.id < early.id);
    }

    #[tokio::test]
    async fn rejects_malformed_fingerprints() {
        let (_dir, store) = temp_store().await;
        for bad in [
            "AB".repeat(32),
            "ab".repeat(31),
            "zz".repeat(32),
            String::new(),
        ] {
            let mut c = new("x", 1, Protocol::Native);
            c.fingerprint = bad;
            let err = store.add_client(c).await.unwrap_err();
            assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
        }
        // The schema holds the same line even if the Rust check is bypassed.
        let err = sqlx::query(
            "INSERT INTO clients (name, cert_pem, fingerprint, protocol, paired_at) \
             VALUES ('x', 'p', ?, 'native', 0)",
        )
        .bind("AB".repeat(32))
        .execute(&store.pool)
        .await
        .unwrap_err();
        assert!(err.to_string().contains("CHECK"), "{err}");
        assert!(store.list_clients().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn unknown_protocol_in_db_is_corrupt_not_a_panic() {
        let (_dir, store) = temp_store().await;
        // Bypass the CHECK the way a hand-edited or future database might.
        let mut conn = store.pool.acquire().await.unwrap();
        sqlx::query("PRAGMA ignore_check_constraints = ON")
            .execute(&mut *conn)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO clients (name, cert_pem, fingerprint, protocol, paired_at) \
             VALUES ('x', 'p', ?, 'carrier-pigeon', 0)",
        )
        .bind(fp(9))
        .execute(&mut *conn)
        .await
        .unwrap();
        drop(conn);
        let err = store.client_by_fingerprint(&fp(9)).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    }
}
