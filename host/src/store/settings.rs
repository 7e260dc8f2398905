//! Host settings: a key/value table with JSON-encoded values, so adding a setting
//! needs no migration and any `serde` type can be stored.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Store, StoreError, now_unix};

fn decode<T: DeserializeOwned>(key: &str, json: &str) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|source| StoreError::Decode {
        key: key.to_owned(),
        source,
    })
}

fn encode<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Encode {
        key: key.to_owned(),
        source,
    })
}

impl Store {
    /// The setting stored under `key`, if any. A stored value that does not decode as
    /// `T` is a [`StoreError::Decode`], never silently `None`.
    pub async fn get_setting<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let json: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        json.map(|json| decode(key, &json)).transpose()
    }

    /// Stores `value` under `key`, replacing any previous value.
    pub async fn set_setting<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let json = encode(key, value)?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (key) DO UPDATE \
             SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(&json)
        .bind(now_unix())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The setting under `key`; if absent, stores `init()` first. Atomic: the lookup
    /// and the insert share one write-locked transaction, so concurrent callers (or a
    /// crash between generating and storing) can never end up with two different
    /// values. The host relies on this for its stable unique id and hostname.
    /// `init` runs only when the key is absent. The returned value is what a later
    /// [`Store::get_setting`] returns (it is decoded from the stored JSON).
    pub async fn get_or_insert_setting<T, F>(&self, key: &str, init: F) -> Result<T, StoreError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> T,
    {
        let mut tx = self.begin_write().await?;
        let existing: Option<String> =
            sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
        let json = match existing {
            Some(json) => json,
            None => {
                let json = encode(key, &init())?;
                sqlx::query("INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)")
                    .bind(key)
                    .bind(&json)
                    .bind(now_unix())
                    .execute(&mut *tx)
                    .await?;
                json
            }
        };
        tx.commit().await?;
        decode(key, &json)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::temp_store;
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Video {
        width: u32,
        height: u32,
        codecs: Vec<String>,
    }

    #[tokio::test]
    async fn roundtrip_and_overwrite() {
        let (_dir, store) = temp_store().await;
        assert_eq!(store.get_setting::<u32>("fps").await.unwrap(), None);
        store.set_setting("fps", &60u32).await.unwrap();
        assert_eq!(store.get_setting::<u32>("fps").await.unwrap(), Some(60));
        store.set_setting("fps", &120u32).await.unwrap();
        assert_eq!(store.get_setting::<u32>("fps").await.unwrap(), Some(120));

        let video = Video {
            width: 2560,
            height: 1440,
            codecs: vec!["hevc".into(), "av1".into()],
        };
        store.set_setting("video", &video).await.unwrap();
        assert_eq!(store.get_setting("video").await.unwrap(), Some(video));
        store.set_setting("name", "rig \"quoted\"").await.unwrap();
        assert_eq!(
            store
                .get_setting::<String>("name")
                .await
                .unwrap()
                .as_deref(),
            Some("rig \"quoted\"")
        );
    }

    #[tokio::test]
    async fn wrong_type_is_decode_error() {
        let (_dir, store) = temp_store().await;
        store.set_setting("fps", &"sixty").await.unwrap();
        let err = store.get_setting::<u32>("fps").await.unwrap_err();
        assert!(
            matches!(err, StoreError::Decode { ref key, .. } if key == "fps"),
            "{err:?}"
        );
        let err = store
            .get_or_insert_setting::<u32, _>("fps", || 60)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Decode { .. }), "{err:?}");
        // The bad value was not overwritten.
        assert_eq!(
            store.get_setting::<String>("fps").await.unwrap().as_deref(),
            Some("sixty")
        );
    }

    #[tokio::test]
    async fn unencodable_value_is_encode_error() {
        let (_dir, store) = temp_store().await;
        // JSON object keys must be strings.
        let map = std::collections::BTreeMap::from([((1, 2), 3)]);
        let err = store.set_setting("map", &map).await.unwrap_err();
        assert!(matches!(err, StoreError::Encode { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn get_or_insert_keeps_the_first_value() {
        let (_dir, store) = temp_store().await;
        let first: String = store
            .get_or_insert_setting("uniqueid", || "first".to_owned())
            .await
            .unwrap();
        assert_eq!(first, "first");
        let second: String = store
            .get_or_insert_setting("uniqueid", || -> String { panic!("init ran twice") })
            .await
            .unwrap();
        assert_eq!(second, "first");
        assert_eq!(
            store
                .get_setting::<String>("uniqueid")
                .await
                .unwrap()
                .as_deref(),
            Some("first")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn get_or_insert_is_atomic_under_concurrency() {
        let (_dir, store) = temp_store().await;
        // Several keys, each raced by callers released together, so a non-atomic
        // read-then-insert shows up as an error or as callers seeing different ids.
        for round in 0..8 {
            let key = format!("uniqueid-{round}");
            let start = std::sync::Arc::new(tokio::sync::Barrier::new(8));
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    let (store, key, start) = (store.clone(), key.clone(), start.clone());
                    tokio::spawn(async move {
                        start.wait().await;
                        store
                            .get_or_insert_setting(&key, move || format!("id-{i}"))
                            .await
                    })
                })
                .collect();
            let mut seen = Vec::new();
            for task in tasks {
                seen.push(task.await.unwrap().unwrap());
            }
            let stored: String = store.get_setting(&key).await.unwrap().unwrap();
            assert!(seen.iter().all(|s| *s == stored), "{seen:?} vs {stored}");
        }
    }
}
