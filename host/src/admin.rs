//! `punktfunk-host clients ...`, `apps ...` and `admin ...`: managing paired devices,
//! the app catalog and the web console's account from the box itself (over SSH, or the
//! console).
//!
//! These open the same SQLite store the service uses. WAL mode lets them write while
//! the service runs, and the service checks the store on every HTTPS request, so a
//! removed device is refused at once.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::store::{AppUpdate, NewApp, Store};

/// `punktfunk-host clients ...`.
#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// List paired devices.
    List,
    /// Give a paired device another name.
    Rename {
        /// The device's id (from `clients list`).
        id: i64,
        /// Its new name.
        name: String,
    },
    /// Unpair a device: its next request is refused.
    Remove {
        /// The device's id (from `clients list`).
        id: i64,
    },
}

/// `punktfunk-host apps ...`.
#[derive(Debug, Subcommand)]
pub enum AppsCommand {
    /// List the apps clients see.
    List,
    /// Add an app.
    Add {
        /// The title clients show.
        title: String,
        /// The command that starts it.
        #[arg(long)]
        command: Option<String>,
        /// A PNG image for its box art.
        #[arg(long, value_name = "PNG")]
        box_art: Option<PathBuf>,
    },
    /// Change an app's title or command.
    Edit {
        /// The app's id (from `apps list`).
        id: i64,
        /// A new title.
        #[arg(long)]
        title: Option<String>,
        /// A new command (an empty string clears it).
        #[arg(long)]
        command: Option<String>,
    },
    /// Remove an app added with `apps add`.
    Remove {
        /// The app's id (from `apps list`).
        id: i64,
    },
}

/// `punktfunk-host admin ...`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Set a new password for the web console's admin account, log out every browser
    /// and lift every login lockout. Reads the password from the terminal (asked
    /// twice, not echoed) or, when stdin is not a terminal, from its first line.
    ResetPassword {
        /// The account [default: the only one].
        #[arg(long)]
        username: Option<String>,
    },
}

async fn open(config: &Config) -> Result<Store> {
    let path = config.store_path();
    if !path.exists() {
        bail!(
            "no store at {}: has `punktfunk-host serve` run with this --state-dir yet?",
            path.display()
        );
    }
    Store::open(&path)
        .await
        .with_context(|| format!("opening the store {}", path.display()))
}

fn when(unix: Option<i64>) -> String {
    unix.map_or_else(
        || "never".to_owned(),
        |t| {
            let age = crate::store::now_unix() - t;
            match age {
                ..60 => "just now".to_owned(),
                60..3600 => format!("{} min ago", age / 60),
                3600..86400 => format!("{} h ago", age / 3600),
                _ => format!("{} days ago", age / 86400),
            }
        },
    )
}

/// Runs a `clients` command.
pub async fn clients(config: &Config, cmd: ClientsCommand) -> Result<()> {
    let store = open(config).await?;
    match cmd {
        ClientsCommand::List => {
            let clients = store.list_clients().await?;
            if clients.is_empty() {
                println!("no paired devices");
            }
            for c in clients {
                println!(
                    "{:>4}  {:<24}  {:<10}  {}  paired {}, last seen {}",
                    c.id,
                    c.name,
                    c.protocol.as_str(),
                    &c.fingerprint[..16],
                    when(Some(c.paired_at)),
                    when(c.last_seen)
                );
            }
        }
        ClientsCommand::Rename { id, name } => {
            if name.trim().is_empty() {
                bail!("a device name cannot be empty");
            }
            if !store.rename_client(id, name.trim()).await? {
                bail!("no paired device has id {id}");
            }
            println!("renamed device {id} to \"{}\"", name.trim());
        }
        ClientsCommand::Remove { id } => {
            if !store.remove_client(id).await? {
                bail!("no paired device has id {id}");
            }
            println!("unpaired device {id}");
        }
    }
    store.close().await;
    Ok(())
}

/// Runs an `apps` command.
pub async fn apps(config: &Config, cmd: AppsCommand) -> Result<()> {
    let store = open(config).await?;
    match cmd {
        AppsCommand::List => {
            for app in Catalog::new(&config.apps, store.clone()).list().await? {
                let source = match app.source {
                    crate::catalog::AppSource::BuiltIn => "built in",
                    crate::catalog::AppSource::Config => "config file",
                    crate::catalog::AppSource::Store => "added",
                };
                println!(
                    "{:>10}  {:<28}  {:<11}  {}",
                    app.id,
                    app.title,
                    source,
                    app.command.as_deref().unwrap_or("-")
                );
            }
        }
        AppsCommand::Add {
            title,
            command,
            box_art,
        } => {
            let box_art = match box_art {
                Some(path) => {
                    let png = std::fs::read(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    if !png.starts_with(b"\x89PNG\r\n\x1a\n") {
                        bail!("{} is not a PNG image", path.display());
                    }
                    Some(png)
                }
                None => None,
            };
            if title.eq_ignore_ascii_case("Desktop") {
                bail!("\"Desktop\" is built in");
            }
            let app = store
                .create_app(NewApp {
                    title,
                    command,
                    box_art,
                })
                .await?;
            println!("added \"{}\" as app {}", app.title, app.id);
        }
        AppsCommand::Edit { id, title, command } => {
            let update = AppUpdate {
                title,
                command: command.map(|c| Some(c).filter(|c| !c.is_empty())),
                box_art: None,
            };
            match store.update_app(id, update).await? {
                Some(app) => println!("app {} is now \"{}\"", app.id, app.title),
                None => bail!("no added app has id {id}"),
            }
        }
        AppsCommand::Remove { id } => {
            if !store.delete_app(id).await? {
                bail!(
                    "no added app has id {id} (built-in and config-file apps cannot be removed here)"
                );
            }
            println!("removed app {id}");
        }
    }
    store.close().await;
    Ok(())
}

/// Reads a password: from the terminal without echo (twice), or the first line of a
/// non-terminal stdin.
fn read_password(prompt: &str) -> Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    let read_hidden = |prompt: &str| -> Result<String> {
        eprint!("{prompt}");
        std::io::stderr().flush()?;
        let fd = libc::STDIN_FILENO;
        // SAFETY: termios is plain data; tcgetattr fills it for a terminal fd.
        let mut term: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd is stdin, which is a terminal (checked above).
        let have_term = unsafe { libc::tcgetattr(fd, &mut term) } == 0;
        if have_term {
            let mut quiet = term;
            quiet.c_lflag &= !libc::ECHO;
            // SAFETY: same fd, a termios derived from the one tcgetattr returned.
            unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
        }
        let mut line = String::new();
        let read = stdin.lock().read_line(&mut line);
        if have_term {
            // SAFETY: restores the settings read above.
            unsafe { libc::tcsetattr(fd, libc::TCSANOW, &term) };
        }
        eprintln!();
        read?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    };
    let first = read_hidden(prompt)?;
    let again = read_hidden("Again: ")?;
    if first != again {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(first)
}

/// Runs an `admin` command.
pub async fn admin(config: &Config, cmd: AdminCommand) -> Result<()> {
    let store = open(config).await?;
    match cmd {
        AdminCommand::ResetPassword { username } => {
            let admins = store.list_admins().await?;
            let admin = match (&username, admins.as_slice()) {
                (_, []) => bail!(
                    "there is no admin account yet: open the web console and create one with the \
                     setup code (in {})",
                    config
                        .state_dir
                        .join(crate::mgmt::setup::SETUP_CODE_FILE)
                        .display()
                ),
                (Some(name), all) => all
                    .iter()
                    .find(|a| a.username.eq_ignore_ascii_case(name))
                    .with_context(|| format!("no admin account is called {name:?}"))?,
                (None, [only]) => only,
                (None, _) => bail!(
                    "there are several admin accounts; name one with --username ({})",
                    admins
                        .iter()
                        .map(|a| a.username.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            let password = read_password(&format!("New password for {}: ", admin.username))?;
            if password.chars().count() < crate::mgmt::auth::MIN_PASSWORD {
                bail!(
                    "choose a password of at least {} characters; nothing was changed",
                    crate::mgmt::auth::MIN_PASSWORD
                );
            }
            if password.len() > crate::mgmt::auth::MAX_PASSWORD {
                bail!("that password is too long; nothing was changed");
            }
            let hash =
                tokio::task::spawn_blocking(move || crate::mgmt::auth::hash_password(&password))
                    .await?
                    .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?;
            store.set_admin_password(admin.id, &hash, None).await?;
            let lifted = store.clear_all_login_failures().await?;
            println!(
                "new password set for \"{}\"; every browser was logged out{}",
                admin.username,
                if lifted > 0 {
                    " and login lockouts were lifted"
                } else {
                    ""
                }
            );
        }
    }
    store.close().await;
    Ok(())
}
