//! Which state database a table dataset belongs to (see `Store::bind_state`): recorded with the data, in the
//! engine's own schema of the same database, so that a pass with a state database that was lost and re-created
//! empty (without the legal holds) is refused. The engine's schema is never a dataset's (checked in `config.rs`).

use crate::store::StoreError;

use super::{PostgresConfig, backend};

/// The engine's schema in a managed database: its state binding now, its trash later.
pub const ENGINE_SCHEMA: &str = "_retention";

/// The key of a dataset's binding: the dataset's name and its table, so that two datasets never share one.
fn key(dataset: &str, c: &PostgresConfig) -> String {
    format!("{dataset}\u{1f}{}.{}", c.schema, c.table)
}

pub(super) async fn bind(
    client: &tokio_postgres::Client,
    c: &PostgresConfig,
    dataset: &str,
    state_id: &str,
    write: bool,
) -> Result<(), StoreError> {
    let key = key(dataset, c);
    let table = format!("{ENGINE_SCHEMA}.state_binding");
    if write {
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {ENGINE_SCHEMA}; \
                 CREATE TABLE IF NOT EXISTS {table} (dataset text PRIMARY KEY, state_id text NOT NULL, \
                 bound_at timestamptz NOT NULL DEFAULT now())"
            ))
            .await
            .map_err(|e| backend(format!("cannot create {table}"), e))?;
        // The first binding wins: a concurrent pass that wrote another one first is compared with below.
        client
            .execute(
                &format!("INSERT INTO {table} (dataset, state_id) VALUES ($1, $2) ON CONFLICT (dataset) DO NOTHING"),
                &[&key, &state_id],
            )
            .await
            .map_err(|e| backend(format!("cannot record the state binding in {table}"), e))?;
    } else {
        let exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
            .await
            .map_err(|e| backend(format!("cannot look up {table}"), e))?
            .get(0);
        if !exists {
            return Ok(()); // never passed over for real: nothing recorded, nothing to compare
        }
    }
    let recorded: Option<String> = client
        .query_opt(&format!("SELECT state_id FROM {table} WHERE dataset = $1"), &[&key])
        .await
        .map_err(|e| backend(format!("cannot read {table}"), e))?
        .map(|r| r.get(0));
    match recorded {
        None => Ok(()),
        Some(r) if r == state_id => Ok(()),
        Some(r) => Err(StoreError::OtherState {
            dataset: dataset.to_string(),
            recorded: r,
            current: state_id.to_string(),
            marker: format!("the row of {dataset:?} in {table} (in {})", c.url),
        }),
    }
}
