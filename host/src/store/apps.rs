//! User-defined apps, as listed to GameStream clients.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{Store, StoreError, is_unique_violation, now_unix};

/// The lowest id a user app can get. Ids below are reserved for the host's built-in
/// apps (Desktop = 1); clients cache ids, so the two ranges must never meet. The
/// schema seeds its AUTOINCREMENT sequence here and CHECKs the bound.
pub const FIRST_USER_APP_ID: i64 = 1000;

/// An app to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApp {
    pub title: String,
    /// What to launch; `None` streams without launching anything.
    pub command: Option<String>,
    /// PNG bytes of the cover art.
    pub box_art: Option<Vec<u8>>,
}

/// Changes to an app. `None` leaves a field alone; for the nullable fields,
/// `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppUpdate {
    pub title: Option<String>,
    pub command: Option<Option<String>>,
    pub box_art: Option<Option<Vec<u8>>>,
}

/// A stored app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// Stable, never reused, always `>= FIRST_USER_APP_ID`.
    pub id: i64,
    pub title: String,
    pub command: Option<String>,
    pub box_art: Option<Vec<u8>>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

const COLUMNS: &str = "id, title, command, box_art, created_at, updated_at";

fn from_row(row: &SqliteRow) -> Result<App, StoreError> {
    Ok(App {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        command: row.try_get("command")?,
        box_art: row.try_get("box_art")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn check_title(title: &str) -> Result<(), StoreError> {
    if title.trim().is_empty() {
        return Err(StoreError::Invalid("app title must not be empty".into()));
    }
    check_text("title", title)
}

/// App fields end up in the session unit's environment file and in clients' lists,
/// one per line: a newline or other control character could inject settings there.
pub fn check_text(field: &str, value: &str) -> Result<(), StoreError> {
    if value.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "an app {field} must not contain control characters (newlines, tabs, escapes)"
        )));
    }
    Ok(())
}

/// Maps a UNIQUE violation on `title` to [`StoreError::Conflict`].
fn title_conflict(title: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |err| {
        if is_unique_violation(&err) {
            StoreError::Conflict(format!("an app titled {title:?} already exists"))
        } else {
            StoreError::Database(err)
        }
    }
}

impl Store {
    /// All user apps, by id.
    pub async fn list_apps(&self) -> Result<Vec<App>, StoreError> {
        sqlx::query(&format!("SELECT {COLUMNS} FROM apps ORDER BY id"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(from_row)
            .collect()
    }

    /// The app with this id.
    pub async fn app(&self, id: i64) -> Result<Option<App>, StoreError> {
        sqlx::query(&format!("SELECT {COLUMNS} FROM apps WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(from_row)
            .transpose()
    }

    /// Creates an app with a fresh id. A duplicate title is a
    /// [`StoreError::Conflict`]: clients show titles, so two identical ones would be
    /// indistinguishable.
    pub async fn create_app(&self, new: NewApp) -> Result<App, StoreError> {
        check_title(&new.title)?;
        if let Some(command) = &new.command {
            check_text("command", command)?;
        }
        let now = now_unix();
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO apps (title, command, box_art, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?) RETURNING {COLUMNS}"
        ))
        .bind(&new.title)
        .bind(&new.command)
        .bind(&new.box_art)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(title_conflict(&new.title))?;
        let app = from_row(&row)?;
        tx.commit().await?;
        Ok(app)
    }

    /// Applies `update` to an app; `None` if no app has this id. The id never changes.
    pub async fn update_app(&self, id: i64, update: AppUpdate) -> Result<Option<App>, StoreError> {
        if let Some(title) = &update.title {
            check_title(title)?;
        }
        if let Some(Some(command)) = &update.command {
            check_text("command", command)?;
        }
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "UPDATE apps SET \
             title = coalesce(?, title), \
             command = CASE WHEN ? THEN ? ELSE command END, \
             box_art = CASE WHEN ? THEN ? ELSE box_art END, \
             updated_at = ? \
             WHERE id = ? RETURNING {COLUMNS}"
        ))
        .bind(&update.title)
        .bind(update.command.is_some())
        .bind(update.command.clone().flatten())
        .bind(update.box_art.is_some())
        .bind(update.box_art.clone().flatten())
        .bind(now_unix())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(title_conflict(update.title.as_deref().unwrap_or_default()))?;
        let app = row.as_ref().map(from_row).transpose()?;
        tx.commit().await?;
        Ok(app)
    }

    /// Deletes an app; `false` if no app has this id. Its id is never handed out again.
    pub async fn delete_app(&self, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM apps WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::temp_store;
    use super::*;

    fn new(title: &str) -> NewApp {
        NewApp {
            title: title.into(),
            command: Some(format!("run {title}")),
            box_art: None,
        }
    }

    #[tokio::test]
    async fn crud() {
        let (_dir, store) = temp_store().await;
        let steam = store.create_app(new("Steam")).await.unwrap();
        assert_eq!(steam.id, FIRST_USER_APP_ID);
        assert_eq!(steam.command.as_deref(), Some("run Steam"));
        assert_eq!(steam.created_at, steam.updated_at);
        let retro = store
            .create_app(NewApp {
                title: "RetroArch".into(),
                command: None,
                box_art: Some(vec![0x89, b'P', b'N', b'G', 0, 1, 2]),
            })
            .await
            .unwrap();
        assert_eq!(retro.id, FIRST_USER_APP_ID + 1);
        assert_eq!(
            store.list_apps().await.unwrap(),
            vec![steam.clone(), retro.clone()]
        );
        assert_eq!(store.app(retro.id).await.unwrap(), Some(retro.clone()));
        assert_eq!(store.app(1).await.unwrap(), None);

        // Untouched fields stay; Some(None) clears; Some(Some) sets.
        let updated = store
            .update_app(
                retro.id,
                AppUpdate {
                    title: Some("RetroArch 2".into()),
                    command: Some(Some("retroarch".into())),
                    box_art: Some(None),
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(updated.id, retro.id);
        assert_eq!(updated.title, "RetroArch 2");
        assert_eq!(updated.command.as_deref(), Some("retroarch"));
        assert_eq!(updated.box_art, None);
        assert_eq!(updated.created_at, retro.created_at);
        let same = store
            .update_app(steam.id, AppUpdate::default())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (same.title, same.command, same.box_art),
            (steam.title, steam.command, steam.box_art)
        );
        let art = store
            .update_app(
                steam.id,
                AppUpdate {
                    command: Some(None),
                    box_art: Some(Some(vec![7; 3])),
                    ..AppUpdate::default()
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!((art.command, art.box_art), (None, Some(vec![7; 3])));
        assert_eq!(
            store.update_app(4242, AppUpdate::default()).await.unwrap(),
            None
        );

        assert!(store.delete_app(steam.id).await.unwrap());
        assert!(!store.delete_app(steam.id).await.unwrap());
        assert_eq!(store.app(steam.id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn ids_are_never_reused_or_reserved() {
        let (_dir, store) = temp_store().await;
        let a = store.create_app(new("a")).await.unwrap();
        let b = store.create_app(new("b")).await.unwrap();
        assert!(store.delete_app(b.id).await.unwrap());
        let c = store.create_app(new("c")).await.unwrap();
        assert!(a.id >= FIRST_USER_APP_ID);
        assert!(c.id > b.id, "deleted id {} was reused", b.id);
        // Even a direct insert cannot land in the built-in range.
        let err = sqlx::query(
            "INSERT INTO apps (id, title, created_at, updated_at) VALUES (1, 'Desktop', 0, 0)",
        )
        .execute(&store.pool)
        .await
        .unwrap_err();
        assert!(err.to_string().contains("CHECK"), "{err}");
    }

    #[tokio::test]
    async fn duplicate_title_is_conflict() {
        let (_dir, store) = temp_store().await;
        let steam = store.create_app(new("Steam")).await.unwrap();
        let other = store.create_app(new("Other")).await.unwrap();
        let err = store.create_app(new("Steam")).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        let err = store
            .update_app(
                other.id,
                AppUpdate {
                    title: Some("Steam".into()),
                    ..AppUpdate::default()
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        // Nothing changed, and renaming to its own title is fine.
        assert_eq!(store.list_apps().await.unwrap().len(), 2);
        assert_eq!(store.app(other.id).await.unwrap().unwrap().title, "Other");
        let same = AppUpdate {
            title: Some("Steam".into()),
            ..AppUpdate::default()
        };
        assert!(store.update_app(steam.id, same).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn empty_title_is_invalid() {
        let (_dir, store) = temp_store().await;
        let err = store.create_app(new("  ")).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
        let app = store.create_app(new("x")).await.unwrap();
        let blank = AppUpdate {
            title: Some(String::new()),
            ..AppUpdate::default()
        };
        let err = store.update_app(app.id, blank).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    }

    #[tokio::test]
    async fn control_characters_in_app_fields_are_refused() {
        let (_dir, store) = temp_store().await;
        for (title, command) in [
            ("Steam", Some("steam\nExecStartPre=/bin/sh -c evil")),
            ("Ste\u{1b}[2Jam", None),
            ("Tab", Some("a\tb")),
        ] {
            let r = store
                .create_app(NewApp {
                    title: title.into(),
                    command: command.map(Into::into),
                    box_art: None,
                })
                .await;
            assert!(
                matches!(r, Err(StoreError::Invalid(_))),
                "{title:?} {command:?}"
            );
        }
        let app = store
            .create_app(NewApp {
                title: "Steam".into(),
                command: Some("steam -bigpicture".into()),
                box_art: None,
            })
            .await
            .unwrap();
        let r = store
            .update_app(
                app.id,
                AppUpdate {
                    command: Some(Some("steam\rInjected=1".into())),
                    ..AppUpdate::default()
                },
            )
            .await;
        assert!(matches!(r, Err(StoreError::Invalid(_))));
    }
}
