//! `retention status`: reads the running service's plugins and datasets through the admin API and prints them as
//! tables (plugins, datasets, and the datasets' shadows if any), or the API's JSON with `--json`.

use std::io::Write;

use serde_json::Value;

/// Why status could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the retention service at {url}: {detail} (is `retention serve` running there?)")]
    Unreachable { url: String, detail: String },
    #[error("the service at {url} answered {status}: {message}")]
    Status { url: String, status: u16, message: String },
    #[error("unexpected answer from {url}: {detail}")]
    BadAnswer { url: String, detail: String },
}

async fn get_json(client: &reqwest::Client, base: &str, path: &str) -> Result<Value, ClientError> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let mut req = client.get(&url);
    if let Ok(token) = std::env::var(crate::config::API_TOKEN_ENV) {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.map_err(|e| ClientError::Unreachable {
        url: url.clone(),
        detail: e.to_string(),
    })?;
    let status = resp.status();
    let body: Value = resp.json().await.map_err(|e| ClientError::BadAnswer {
        url: url.clone(),
        detail: e.to_string(),
    })?;
    if !status.is_success() {
        return Err(ClientError::Status {
            url,
            status: status.as_u16(),
            message: body["error"].as_str().unwrap_or("").to_string(),
        });
    }
    Ok(body)
}

/// Fetches and prints the service's status.
pub async fn status(base: &str, json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let plugins = get_json(&client, base, "/v1/plugins").await?;
    let datasets = get_json(&client, base, "/v1/datasets").await?;
    // An older service has no /v1/service: nothing to warn about then.
    let service = get_json(&client, base, "/v1/service").await.ok();
    let warnings: Vec<String> = service
        .as_ref()
        .and_then(|s| s["service"]["warnings"].as_array())
        .map(|w| w.iter().filter_map(|w| w.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if json {
        serde_json::to_writer_pretty(
            &mut *out,
            &serde_json::json!({ "plugins": plugins["plugins"], "datasets": datasets["datasets"] }),
        )?;
        writeln!(out)?;
        return Ok(());
    }
    for w in &warnings {
        writeln!(out, "WARNING: {}", crate::pass::report::escaped(w))?;
    }
    if !warnings.is_empty() {
        writeln!(out)?;
    }
    let s = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut rows = vec![vec![
        "PLUGIN".to_string(),
        "STATE".into(),
        "NAME VERSION".into(),
        "DIGEST".into(),
        "LOADED AT".into(),
        "SOURCE".into(),
        "DATASETS".into(),
        "LAST REJECTION".into(),
    ]];
    for p in plugins["plugins"].as_array().into_iter().flatten() {
        let a = &p["active"];
        let digest = s(&a["digest"]);
        rows.push(vec![
            s(&p["plugin"]),
            s(&p["state"]),
            if a.is_null() {
                "-".into()
            } else {
                format!("{} {}", s(&a["name"]), s(&a["version"]))
            },
            digest.chars().take(12).collect(),
            s(&a["loaded_at"]),
            s(&a["source"]),
            p["datasets"]
                .as_array()
                .map(|d| d.iter().map(s).collect::<Vec<_>>().join(","))
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| "-".into()),
            match &p["last_rejection"] {
                Value::Null => "-".into(),
                r => format!("{}: {}", s(&r["at"]), s(&r["reason"])),
            },
        ]);
    }
    write_table(out, &rows)?;
    writeln!(out)?;
    let mut rows = vec![vec![
        "DATASET".to_string(),
        "PLUGIN".into(),
        "SCHEDULE".into(),
        "NEXT RUN".into(),
        "RUNNING".into(),
        "SKIPPED".into(),
        "LAST PASS".into(),
        "STATUS".into(),
        "COMPRESSED".into(),
        "ARCHIVED".into(),
        "DROPPED".into(),
        "ERROR".into(),
    ]];
    for d in datasets["datasets"].as_array().into_iter().flatten() {
        let last = &d["last_pass"];
        let stat = |k: &str| {
            if last.is_null() {
                "-".to_string()
            } else {
                s(&last["stats"][k]["segments"])
            }
        };
        rows.push(vec![
            s(&d["name"]),
            s(&d["plugin"]),
            s(&d["schedule"]),
            s(&d["next_run"]),
            if d["running"].as_bool() == Some(true) {
                "yes"
            } else {
                "no"
            }
            .into(),
            s(&d["ticks_skipped"]),
            s(&last["started_at"]),
            if last.is_null() {
                "-".into()
            } else {
                format!(
                    "{}{}",
                    s(&last["status"]),
                    if last["dry_run"].as_bool() == Some(true) {
                        " (dry run)"
                    } else {
                        ""
                    }
                )
            },
            stat("compressed"),
            stat("archived"),
            stat("dropped"),
            s(&last["error"]),
        ]);
    }
    write_table(out, &rows)?;
    write_shadows(out, &datasets, s)?;
    Ok(())
}

/// The third table: datasets with a shadow, the active and shadow versions, and the latest comparison's figures as
/// `active/shadow` per action. Absent when no dataset has a shadow.
fn write_shadows(out: &mut impl Write, datasets: &Value, s: impl Fn(&Value) -> String) -> std::io::Result<()> {
    let mut rows = vec![vec![
        "DATASET".to_string(),
        "ACTIVE".into(),
        "SHADOW".into(),
        "STATE".into(),
        "PASSES LEFT".into(),
        "KEEP".into(),
        "COMPRESS".into(),
        "ARCHIVE".into(),
        "DROP".into(),
        "DIFFERING".into(),
        "ERROR".into(),
    ]];
    for d in datasets["datasets"].as_array().into_iter().flatten() {
        let sh = &d["shadow"];
        if sh.is_null() {
            continue;
        }
        let latest = &sh["latest"];
        // The versions that ran, when a pass compared them; the plugin names until then.
        let version = |side: &str, plugin: &Value| match &latest[side] {
            Value::Null => s(plugin),
            v => format!("{} ({} {})", s(plugin), s(&v["name"]), s(&v["version"])),
        };
        let figures = |action: &str| {
            let a = &latest["actions"][action];
            if latest.is_null() {
                "-".to_string()
            } else if !latest["error"].is_null() {
                format!("{}/-", s(&a["active"]["segments"]))
            } else {
                format!("{}/{}", s(&a["active"]["segments"]), s(&a["shadow"]["segments"]))
            }
        };
        rows.push(vec![
            s(&d["name"]),
            version("active", &sh["active_plugin"]),
            version("shadow", &sh["plugin"]),
            s(&sh["state"]),
            format!("{}/{}", s(&sh["passes_left"]), s(&sh["passes"])),
            figures("keep"),
            figures("compress"),
            figures("archive"),
            figures("drop"),
            if latest.is_null() || !latest["error"].is_null() {
                "-".into()
            } else {
                s(&latest["differing"])
            },
            s(&latest["error"]),
        ]);
    }
    if rows.len() > 1 {
        writeln!(out)?;
        write_table(out, &rows)?;
    }
    Ok(())
}

/// Left-aligned columns, two spaces apart; the last column is not padded. Cells are escaped: names and errors come
/// from file names and plugins, which must not be able to forge lines or send terminal escapes.
fn write_table(out: &mut impl Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| crate::pass::report::escaped(c).into_owned()).collect())
        .collect();
    let rows = &rows[..];
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == cols {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}
