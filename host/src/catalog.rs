//! The app catalog clients see: the built-in Desktop, apps from the config file, and
//! apps created through the management API (the store).
//!
//! App ids are what GameStream clients remember between sessions, so each source has
//! a stable id range: Desktop is 1, store apps count from 1000, and config-file apps
//! get a hash of their title in `0x4000_0000..0x8000_0000`, so editing the file never
//! renumbers anything else.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::config::AppConfig;
use crate::store::{FIRST_USER_APP_ID, Store};

/// The built-in desktop app's id.
pub const DESKTOP_ID: u32 = 1;

/// Where an app comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppSource {
    /// Built into the host.
    BuiltIn,
    /// The config file.
    Config,
    /// The store (management API).
    Store,
}

/// One app in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogApp {
    /// The id clients use.
    pub id: u32,
    /// The title clients show.
    pub title: String,
    /// The command that starts it, if any (Desktop has none).
    pub command: Option<String>,
    /// Where it comes from.
    pub source: AppSource,
    box_art_file: Option<PathBuf>,
}

/// The catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    fixed: Vec<CatalogApp>,
    store: Store,
}

fn config_app_id(title: &str) -> u32 {
    (crc32fast::hash(title.to_lowercase().as_bytes()) & 0x3FFF_FFFF) | 0x4000_0000
}

impl Catalog {
    /// Desktop plus the config file's apps, plus whatever the store holds.
    pub fn new(config_apps: &[AppConfig], store: Store) -> Self {
        let mut fixed = vec![CatalogApp {
            id: DESKTOP_ID,
            title: "Desktop".to_owned(),
            command: None,
            source: AppSource::BuiltIn,
            box_art_file: None,
        }];
        for app in config_apps {
            if app.title.eq_ignore_ascii_case("Desktop") {
                tracing::warn!("the config file's app \"Desktop\" is ignored: it is built in");
                continue;
            }
            fixed.push(CatalogApp {
                id: config_app_id(&app.title),
                title: app.title.clone(),
                command: app.command.clone(),
                source: AppSource::Config,
                box_art_file: app.box_art.clone(),
            });
        }
        Self { fixed, store }
    }

    /// Every app, built-in first.
    pub async fn list(&self) -> Result<Vec<CatalogApp>> {
        let mut apps = self.fixed.clone();
        let stored = self
            .store
            .list_apps()
            .await
            .context("listing stored apps")?;
        for a in stored {
            // The schema keeps stored ids in their own range; never let one shadow Desktop.
            let Ok(id) = u32::try_from(a.id) else {
                continue;
            };
            if a.id < FIRST_USER_APP_ID {
                continue;
            }
            if apps.iter().any(|x| x.title.eq_ignore_ascii_case(&a.title)) {
                continue; // the file or the built-in wins over a same-named store app
            }
            apps.push(CatalogApp {
                id,
                title: a.title,
                command: a.command,
                source: AppSource::Store,
                box_art_file: None,
            });
        }
        Ok(apps)
    }

    /// The app with `id`.
    pub async fn get(&self, id: u32) -> Result<Option<CatalogApp>> {
        Ok(self.list().await?.into_iter().find(|a| a.id == id))
    }

    /// PNG box art for `id`: uploaded art, the config file's image, or a generated
    /// default. `None` for an unknown app.
    pub async fn box_art(&self, id: u32) -> Result<Option<Vec<u8>>> {
        let Some(app) = self.get(id).await? else {
            return Ok(None);
        };
        if app.source == AppSource::Store
            && let Some(stored) = self.store.app(i64::from(id)).await?
            && let Some(png) = stored.box_art
        {
            return Ok(Some(png));
        }
        if let Some(path) = &app.box_art_file {
            match tokio::fs::read(path).await {
                Ok(png) => return Ok(Some(png)),
                Err(e) => tracing::warn!(path = %path.display(), "box art unreadable: {e}"),
            }
        }
        Ok(Some(default_box_art(app.id, &app.title)))
    }
}

/// Box art width and height (GameStream's 2:3-ish poster shape).
pub const BOX_ART_SIZE: (u32, u32) = (300, 400);

/// A generated poster: a diagonal gradient in a hue picked from the title, with a
/// lighter band, so every app is recognisable at a glance without shipping a font.
pub fn default_box_art(id: u32, title: &str) -> Vec<u8> {
    let (w, h) = BOX_ART_SIZE;
    let seed = crc32fast::hash(title.as_bytes()) ^ id;
    let hue = f64::from(seed % 360);
    let (r0, g0, b0) = hsv(hue, 0.65, 0.85);
    let (r1, g1, b1) = hsv((hue + 40.0) % 360.0, 0.8, 0.35);
    let mut pixels = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let t = (f64::from(x) / f64::from(w) + f64::from(y) / f64::from(h)) / 2.0;
            let band = (f64::from(y) / f64::from(h) - 0.62).abs() < 0.07;
            let mix = |a: f64, b: f64| {
                let v = a + (b - a) * t;
                let v = if band { v + (255.0 - v) * 0.35 } else { v };
                v.round().clamp(0.0, 255.0) as u8
            };
            pixels.extend_from_slice(&[mix(r0, r1), mix(g0, g1), mix(b0, b1)]);
        }
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().expect("writing to a Vec cannot fail");
    writer
        .write_image_data(&pixels)
        .expect("pixel buffer matches the header");
    drop(writer);
    out
}

fn hsv(h: f64, s: f64, v: f64) -> (f64, f64, f64) {
    let c = v * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let m = v - c;
    let (r, g, b) = match (h / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    ((r + m) * 255.0, (g + m) * 255.0, (b + m) * 255.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewApp;

    #[tokio::test]
    async fn desktop_config_and_store_apps_with_stable_ids() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).await.unwrap();
        let stored = store
            .create_app(NewApp {
                title: "Emulators".into(),
                command: Some("retroarch".into()),
                box_art: Some(vec![0x89, b'P', b'N', b'G']),
            })
            .await
            .unwrap();
        let config = vec![AppConfig {
            title: "Steam".into(),
            command: Some("steam -gamepadui".into()),
            box_art: None,
        }];
        let cat = Catalog::new(&config, store);
        let apps = cat.list().await.unwrap();
        let titles: Vec<_> = apps.iter().map(|a| (a.id, a.title.as_str())).collect();
        assert_eq!(titles[0], (1, "Desktop"));
        assert_eq!(titles[1], (config_app_id("Steam"), "Steam"));
        assert_eq!(titles[2], (stored.id as u32, "Emulators"));
        assert_eq!(config_app_id("Steam"), config_app_id("steam"));
        assert!(config_app_id("Steam") >= 0x4000_0000);
        // Uploaded art is served as is; others get a generated PNG.
        assert_eq!(
            cat.box_art(stored.id as u32).await.unwrap().unwrap(),
            vec![0x89, b'P', b'N', b'G']
        );
        let art = cat.box_art(1).await.unwrap().unwrap();
        assert_eq!(&art[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(cat.box_art(999).await.unwrap(), None);
    }

    #[test]
    fn generated_art_decodes_and_differs_per_app() {
        let a = default_box_art(1, "Desktop");
        let b = default_box_art(2, "Steam");
        assert_ne!(a, b);
        let decoder = png::Decoder::new(std::io::Cursor::new(&a));
        let reader = decoder.read_info().unwrap();
        assert_eq!((reader.info().width, reader.info().height), BOX_ART_SIZE);
    }
}
