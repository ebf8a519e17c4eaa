//! Quoting for the statements the store builds (identifiers and literals are never interpolated raw: a partition
//! named `x"; DROP TABLE y; --` is one identifier), and the small queries several steps share.

use crate::store::StoreError;

use super::backend;

/// An identifier, quoted: `"it""s"`.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."name"`.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", ident(schema), ident(name))
}

/// A string literal, for the statements that take no parameters (`COMMENT ON`); the session runs with
/// `standard_conforming_strings = on`, so a backslash is an ordinary character.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Runs one statement on its own (autocommit), naming what it did in an error.
pub async fn exec(client: &tokio_postgres::Client, what: impl FnOnce() -> String, sql: &str) -> Result<(), StoreError> {
    client.batch_execute(sql).await.map_err(|e| backend(what(), e))
}

/// Refuses a restore of `name` onto `target` (quoted) when a table of that name exists now.
pub async fn free_for_restore(client: &tokio_postgres::Client, target: &str, name: &str) -> Result<(), StoreError> {
    let taken: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&target])
        .await
        .map_err(|e| backend(format!("cannot look up {target}"), e))?
        .get(0);
    if taken {
        return Err(StoreError::Taken {
            doing: "restore",
            name: name.to_string(),
            place: format!("table {target}"),
        });
    }
    Ok(())
}

/// The SQLSTATE of a database error, if it is one.
pub fn code(e: &StoreError) -> Option<String> {
    let StoreError::Backend { source, .. } = e else {
        return None;
    };
    source
        .downcast_ref::<super::ServerError>()
        .and_then(|e| e.0.code())
        .map(|c| c.code().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted_whatever_they_hold() {
        assert_eq!(ident("events"), "\"events\"");
        assert_eq!(ident("x\"; DROP TABLE y; --"), "\"x\"\"; DROP TABLE y; --\"");
        assert_eq!(qualified("My Schema", "a.b"), "\"My Schema\".\"a.b\"");
        assert_eq!(literal("it's \\ fine"), "'it''s \\ fine'");
    }
}
