//! The PostgreSQL store (issue 12, first part): a table as a dataset. What exists so far: the config section, the
//! connection (the password from an environment variable or a file, `lock_timeout` and `statement_timeout` on every
//! session, UTC), and the scan of a declaratively RANGE-partitioned table, a segment per leaf partition (time range
//! from its bounds, parsed by the server; bytes from `pg_total_relation_size`; rows from the planner's estimate;
//! labels `schema`, `table` and the named captures of `labels` over the partition's name; the DEFAULT partition never
//! a segment). The store carries out no action yet: its capabilities say so, and a plan that asks for one is refused
//! whole before anything is applied (its report still lists every segment with the plugin's decision), so nothing is
//! ever touched.

pub mod config;
mod scan;
pub mod state;

use async_trait::async_trait;

pub use config::{PostgresConfig, RawPostgres};

use crate::segment::{Action, Symbols, Tier};
use crate::store::{Applied, ApplyOptions, BoxError, Capabilities, Recovery, Scan, Store, StoreError, Work};

/// Why every action is refused for now.
const NO_ACTIONS: &str = "the PostgreSQL store plans but does not act yet (archive to Parquet, drop into a trash \
                          schema and TimescaleDB compression are still to come): the report lists what the plugin \
                          would do; only a plan of keeps runs through";

pub struct PostgresStore {
    config: PostgresConfig,
}

fn backend(what: impl Into<String>, e: impl Into<BoxError>) -> StoreError {
    StoreError::Backend {
        what: what.into(),
        source: e.into(),
    }
}

impl PostgresStore {
    /// Opens the store, checking that the server answers and the table exists.
    pub async fn open(config: PostgresConfig) -> Result<PostgresStore, StoreError> {
        let store = PostgresStore { config };
        let client = store.connect().await?;
        scan::check_table(&client, &store.config).await?;
        Ok(store)
    }

    /// A new session: the password from where the config says, the store's timeouts, UTC.
    async fn connect(&self) -> Result<tokio_postgres::Client, StoreError> {
        let c = &self.config;
        let mut pg: tokio_postgres::Config = c
            .url
            .parse()
            .map_err(|e| backend(format!("cannot parse {}", c.url), e))?;
        match &c.password {
            config::Password::None => {}
            config::Password::Env(var) => {
                let pw = std::env::var(var).map_err(|_| {
                    StoreError::Refused(format!(
                        "the password of {} is in the environment variable {var}, which is not set: set it (or change \
                         password_env)",
                        c.url
                    ))
                })?;
                pg.password(pw);
            }
            config::Password::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| StoreError::io("cannot read the password file", path.display(), e))?;
                pg.password(text.lines().next().unwrap_or_default());
            }
        }
        let (client, connection) = pg
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| backend(format!("cannot connect to {}", c.url), e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("postgres connection ended: {e}");
            }
        });
        client
            .batch_execute(&format!(
                "SET lock_timeout = {}; SET statement_timeout = {}; SET TimeZone = 'UTC'",
                c.lock_timeout.as_millis(),
                c.statement_timeout.as_millis()
            ))
            .await
            .map_err(|e| backend("cannot set up the session", e))?;
        Ok(client)
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn describe(&self) -> String {
        format!(
            "postgres {} table {}.{}",
            self.config.url, self.config.schema, self.config.table
        )
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::all();
        for tier in [Tier::Hot, Tier::Compressed, Tier::Archived] {
            for action in [Action::Compress, Action::Archive, Action::Drop] {
                caps = caps.without(tier, action, NO_ACTIONS);
            }
        }
        caps
    }

    async fn bind_state(&self, dataset: &str, state_id: &str, write: bool) -> Result<(), StoreError> {
        let client = self.connect().await?;
        state::bind(&client, &self.config, dataset, state_id, write).await
    }

    async fn scan(&self, _repair: bool, symbols: &mut Symbols) -> Result<(Recovery, Scan), StoreError> {
        let client = self.connect().await?;
        let scan = scan::partitions(&client, &self.config, symbols).await?;
        Ok((Recovery::default(), scan))
    }

    async fn apply(&self, work: &[Work<'_>], _opts: &ApplyOptions<'_>) -> Vec<Option<Result<Applied, StoreError>>> {
        // The pass checks the plan against the capabilities first; this only runs if that check is bypassed.
        work.iter()
            .map(|w| {
                Some(Err(StoreError::Unsupported {
                    segment: w.segment.name.clone(),
                    action: w.action,
                    tier: w.segment.tier,
                    why: NO_ACTIONS.to_string(),
                }))
            })
            .collect()
    }
}
