//! `vigil user …` and `vigil token …`: operators and their API tokens, managed directly on the
//! data directory's store (a running server sees the changes at once).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use vigil_server::auth::{generate_password, hash_password, new_token, valid_name};
use vigil_server::store::sqlite::SqliteStore;
use vigil_server::store::{NameQuery, NewApiToken, NewUser, OperatorRole, OperatorStore};

/// Where the store is.
#[derive(Debug, Args)]
pub struct DataDir {
    /// The server's data directory.
    #[arg(long, env = "VIGIL_DATA_DIR", default_value = "/var/lib/vigil")]
    data_dir: PathBuf,
}

/// `vigil user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an operator. The password is read from stdin with --password-stdin, else
    /// generated and printed once.
    Add {
        /// Login name.
        name: String,
        /// admin, analyst or viewer.
        #[arg(long)]
        role: OperatorRole,
        /// Read the password from stdin (first line).
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        dir: DataDir,
    },
    /// List operators.
    List {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Set an operator's password (ends their console sessions).
    Passwd {
        /// Login name.
        name: String,
        /// Read the password from stdin (first line); otherwise one is generated and printed.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Change an operator's role (their sessions and tokens follow at once).
    Role {
        /// Login name.
        name: String,
        /// admin, analyst or viewer.
        role: OperatorRole,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Remove an operator with their tokens and sessions.
    Remove {
        /// Login name.
        name: String,
        #[command(flatten)]
        dir: DataDir,
    },
}

/// `vigil token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it (only the token goes to stdout, shown once).
    Create {
        /// Unique token name (the audit log names it `token:<name>`).
        name: String,
        /// The operator it acts for.
        #[arg(long)]
        user: String,
        /// The role it carries: the user's (default) or a lower one.
        #[arg(long)]
        role: Option<OperatorRole>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// List API tokens.
    List {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Revoke an API token (by name or id).
    Revoke {
        /// Token name or id.
        name: String,
        #[command(flatten)]
        dir: DataDir,
    },
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

async fn open(dir: &Path) -> anyhow::Result<SqliteStore> {
    if !dir.join("server.db").is_file() {
        bail!(
            "no server store in {} (start `vigil up` or `vigil server` with this --data-dir \
             first)",
            dir.display()
        );
    }
    SqliteStore::open(dir)
        .await
        .with_context(|| format!("cannot open the store in {}", dir.display()))
}

/// Who the audit log names for a change made here.
fn actor() -> String {
    let who = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{who}")
}

/// The password from stdin (with --password-stdin) or a generated one (and whether it was).
fn password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if !from_stdin {
        return Ok((generate_password(), true));
    }
    let mut s = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut s)
        .context("cannot read the password from stdin")?;
    let line = s.lines().next().unwrap_or_default().to_owned();
    Ok((line, false))
}

fn hashed(password: &str) -> anyhow::Result<String> {
    hash_password(password).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Runs a user subcommand.
pub fn run_user(command: UserCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(user(command))
}

/// Runs a token subcommand.
pub fn run_token(command: TokenCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(token(command))
}

async fn user(command: UserCommand) -> anyhow::Result<ExitCode> {
    let now = vigil_ocsf::now_ms();
    match command {
        UserCommand::Add {
            name,
            role,
            password_stdin,
            dir,
        } => {
            if !valid_name(&name) {
                bail!("user name {name:?}: use 1 to 64 letters, digits, '.', '_', '-' or '@'");
            }
            let store = open(&dir.data_dir).await?;
            let (pw, generated) = password(password_stdin)?;
            let user = NewUser {
                name: name.clone(),
                role,
                password_hash: hashed(&pw)?,
            };
            store.create_user(&user, &actor(), now).await?;
            store.close().await;
            if generated {
                println!("user {name} ({role}) created; password (shown once): {pw}");
            } else {
                println!("user {name} ({role}) created");
            }
        }
        UserCommand::List { dir } => {
            let store = open(&dir.data_dir).await?;
            let mut after = None;
            loop {
                let q = NameQuery {
                    after: after.clone(),
                    limit: 1000,
                    ..Default::default()
                };
                let users = store.users(&q).await?;
                for u in &users {
                    println!("{}\t{}", u.name, u.role);
                }
                match users.last() {
                    Some(u) if users.len() == 1000 => after = Some(u.name.clone()),
                    _ => break,
                }
            }
            store.close().await;
        }
        UserCommand::Passwd {
            name,
            password_stdin,
            dir,
        } => {
            let store = open(&dir.data_dir).await?;
            let (pw, generated) = password(password_stdin)?;
            if !store
                .set_password(&name, &hashed(&pw)?, &actor(), now)
                .await?
            {
                bail!("no user {name}");
            }
            store.close().await;
            if generated {
                println!("password of {name} set (shown once): {pw}");
            } else {
                println!("password of {name} set");
            }
        }
        UserCommand::Role { name, role, dir } => {
            let store = open(&dir.data_dir).await?;
            let Some(user) = store.set_role(&name, role, &actor(), now).await? else {
                bail!("no user {name}");
            };
            store.close().await;
            println!("user {} is now {}", user.name, user.role);
        }
        UserCommand::Remove { name, dir } => {
            let store = open(&dir.data_dir).await?;
            if !store.delete_user(&name, &actor(), now).await? {
                bail!("no user {name}");
            }
            store.close().await;
            println!("user {name} removed, with their tokens and sessions");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn token(command: TokenCommand) -> anyhow::Result<ExitCode> {
    let now = vigil_ocsf::now_ms();
    match command {
        TokenCommand::Create {
            name,
            user,
            role,
            dir,
        } => {
            if !valid_name(&name) {
                bail!("token name {name:?}: use 1 to 64 letters, digits, '.', '_', '-' or '@'");
            }
            let store = open(&dir.data_dir).await?;
            let Some((u, _)) = store.user_credentials(&user).await? else {
                bail!("no user {user}");
            };
            let role = role.unwrap_or(u.role);
            if role > u.role {
                bail!(
                    "a token carries its user's role ({}) or a lower one, not {role}",
                    u.role
                );
            }
            let secret = new_token();
            let t = NewApiToken {
                name: name.clone(),
                user,
                role,
                token_hash: vigil_server::pki::hash_secret(&secret),
            };
            store.create_api_token(&t, &actor(), now).await?;
            store.close().await;
            eprintln!("token {name} ({role}) created for {}; shown once:", t.user);
            println!("{secret}");
        }
        TokenCommand::List { user, dir } => {
            let store = open(&dir.data_dir).await?;
            let q = NameQuery {
                user,
                limit: 1000,
                ..Default::default()
            };
            for t in store.api_tokens(&q).await? {
                println!("{}\t{}\t{}\t{}", t.name, t.user, t.role, t.id);
            }
            store.close().await;
        }
        TokenCommand::Revoke { name, dir } => {
            let store = open(&dir.data_dir).await?;
            let Some(t) = store.api_token(&name).await? else {
                bail!("no token {name}");
            };
            store.revoke_api_token(&t.id, &actor(), now).await?;
            store.close().await;
            println!("token {} revoked", t.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}
