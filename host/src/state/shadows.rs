//! Shadow mode's rows: a dataset's shadows (set, used up, ended) and the comparisons of the passes that ran one.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{StateDb, StateError};

/// A shadow of a dataset (shadow mode), as recorded: the latest row of a dataset is its current shadow unless ended.
#[derive(Debug, Clone, Serialize)]
pub struct ShadowRow {
    pub id: i64,
    pub dataset: String,
    /// `config` (from `[dataset.shadow]`) or `api`.
    pub source: String,
    /// The shadow's plugin name.
    pub plugin: String,
    /// Passes it was given.
    pub passes: u32,
    /// Real passes that will still run it; 0 when used up (it can still be promoted or discarded).
    pub passes_left: u32,
    /// The `[dataset.shadow]` this row stands for (`plugin:passes`): a config shadow that was ended does not come
    /// back until the config's shadow changes. For an API shadow, the config's shadow when it was set.
    #[serde(skip)]
    pub config_key: Option<String>,
    pub set_at: String,
    /// When it was promoted or discarded.
    pub ended_at: Option<String>,
    /// `promoted` or `discarded`.
    pub ended_how: Option<String>,
}

/// One recorded shadow comparison (its JSON as written by the service).
#[derive(Debug, Clone)]
pub struct ShadowResult {
    pub pass_id: String,
    pub at: String,
    pub comparison: String,
}

impl StateDb {
    /// The latest shadow row of a dataset (ended or not), if any.
    pub fn latest_shadow(&self, dataset: &str) -> Result<Option<ShadowRow>, StateError> {
        self.conn()
            .query_row(
                "SELECT id, dataset, source, plugin, passes, passes_left, config_key, set_at, ended_at, ended_how
                 FROM shadows WHERE dataset = ?1 ORDER BY id DESC LIMIT 1",
                params![dataset],
                |r| {
                    Ok(ShadowRow {
                        id: r.get(0)?,
                        dataset: r.get(1)?,
                        source: r.get(2)?,
                        plugin: r.get(3)?,
                        passes: r.get(4)?,
                        passes_left: r.get(5)?,
                        config_key: r.get(6)?,
                        set_at: r.get(7)?,
                        ended_at: r.get(8)?,
                        ended_how: r.get(9)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Starts a new shadow for a dataset (the previous one, if any, is superseded); returns it.
    pub fn start_shadow(
        &self,
        dataset: &str,
        source: &str,
        plugin: &str,
        passes: u32,
        config_key: Option<&str>,
    ) -> Result<ShadowRow, StateError> {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        {
            let conn = self.conn();
            conn.execute(
                "INSERT INTO shadows (dataset, source, plugin, passes, passes_left, config_key, set_at)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)",
                params![dataset, source, plugin, passes, config_key, at],
            )
            .map_err(|e| self.err(e))?;
        }
        Ok(self.latest_shadow(dataset)?.expect("the shadow was just written"))
    }

    /// Ends a shadow (`how`: `promoted` or `discarded`).
    pub fn end_shadow(&self, id: i64, how: &str) -> Result<(), StateError> {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.conn()
            .execute(
                "UPDATE shadows SET ended_at = ?2, ended_how = ?3 WHERE id = ?1 AND ended_at IS NULL",
                params![id, at, how],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Records a pass's shadow comparison and counts the pass against the shadow's remaining passes (one
    /// transaction). The pass must be recorded first.
    pub fn record_shadow_result(
        &self,
        pass_id: &str,
        shadow_id: i64,
        dataset: &str,
        comparison: &str,
    ) -> Result<(), StateError> {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT OR REPLACE INTO shadow_results (pass_id, shadow_id, dataset, at, comparison)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![pass_id, shadow_id, dataset, at, comparison],
        )
        .map_err(|e| self.err(e))?;
        tx.execute(
            "UPDATE shadows SET passes_left = passes_left - 1 WHERE id = ?1 AND passes_left > 0",
            params![shadow_id],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A shadow's comparisons, newest first.
    pub fn shadow_results(&self, shadow_id: i64, limit: u32) -> Result<Vec<ShadowResult>, StateError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT pass_id, at, comparison FROM shadow_results WHERE shadow_id = ?1 ORDER BY rowid DESC LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![shadow_id, limit], |r| {
                Ok(ShadowResult {
                    pass_id: r.get(0)?,
                    at: r.get(1)?,
                    comparison: r.get(2)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}
