//! `retention plugin new NAME --lang rust|python|ts` and `retention plugin wit [DIR]`: a new plugin project that
//! builds as it is, and the WIT this host accepts.
//!
//! The templates, the SDKs and the WIT are compiled into the binary (`include_str!` of `guest-plugins/templates/`,
//! the SDK sources and `wit/`), so that a project always matches the host that made it, and no network or checkout
//! of this repository is needed beyond each language's own package registry. Each project vendors its SDK.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::UsageError;

/// The WIT of the world this host implements.
pub const WIT: &str = include_str!("../../../wit/retention.wit");

/// The language of a new project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Ts,
}

/// One file of a project: its path in the project and its text, with `{{name}}` and `{{name_snake}}` to fill in.
type File = (&'static str, &'static str);

macro_rules! files {
    ($base:literal => [$($path:literal),* $(,)?]) => {
        &[$(($path, include_str!(concat!("../../../", $base, "/", $path)))),*]
    };
}

const RUST_TEMPLATE: &[File] = files!("guest-plugins/templates/rust" => [
    "Cargo.toml", "Cargo.lock", "rust-toolchain.toml", ".cargo/config.toml", ".gitignore", "README.md",
    "fixture.json", "src/lib.rs",
]);

/// The Rust SDK, vendored as `vendor/retention-sdk/src/`.
const RUST_SDK: &[File] = files!("guest-plugins/sdk/src" => [
    "context.rs", "decision.rs", "imports.rs", "interner.rs", "lib.rs", "logging.rs", "runtime.rs", "segment.rs",
    "testing.rs", "time.rs", "types.rs", "units.rs",
]);
const RUST_SDK_MANIFEST: &str = include_str!("../../../guest-plugins/sdk/Cargo.toml");

const PYTHON_TEMPLATE: &[File] = files!("guest-plugins/python/template" => [
    "app.py", "tests/test_app.py", "fixture.json", "requirements.lock", "build.sh", "test.sh", "_venv.sh", "pytest.ini",
    ".gitignore", "README.md",
]);

/// The Python SDK, vendored as `retention_sdk/` beside `app.py` (componentize-py bundles what the app imports).
const PYTHON_SDK: &[File] = files!("guest-plugins/python/sdk/retention_sdk" => [
    "__init__.py", "_bindings.py", "_log.py", "_native.py", "context.py", "decision.py", "errors.py", "params.py",
    "plugin.py", "runtime.py", "segment.py", "testing.py", "types.py", "units.py",
]);

const TS_TEMPLATE: &[File] = files!("guest-plugins/ts/template" => [
    "package.json", "package-lock.json", "tsconfig.json", "src/plugin.ts", "test/plugin.test.ts", "fixture.json",
    ".gitignore", "README.md",
]);

/// The TypeScript SDK, vendored as `vendor/retention-sdk/` (a `file:` dependency of the project).
const TS_SDK: &[File] = files!("guest-plugins/ts/sdk" => [
    "package.json", "README.md", "src/context.ts", "src/decision.ts", "src/errors.ts", "src/host.ts", "src/index.ts",
    "src/plugin.ts", "src/segment.ts", "src/testing-host.ts", "src/testing.ts", "src/time.ts", "src/types.ts",
    "src/units.ts", "src/utf8.ts", "tools/cli.mjs", "tools/loader.mjs", "tools/register.mjs",
    "types/plugin.d.ts", "types/interfaces/retention-policy-host.d.ts",
    "types/interfaces/retention-policy-policy.d.ts", "types/interfaces/retention-policy-types.d.ts",
]);

/// Every file of a new project in `lang`, with the project's name filled in.
fn project_files(lang: Lang, name: &str) -> Vec<(PathBuf, String)> {
    let snake = name.replace('-', "_");
    let fill = |text: &str| text.replace("{{name_snake}}", &snake).replace("{{name}}", name);
    let mut out: Vec<(PathBuf, String)> = Vec::new();
    let mut add = |path: PathBuf, text: String| out.push((path, text));
    match lang {
        Lang::Rust => {
            for (path, text) in RUST_TEMPLATE {
                add(PathBuf::from(path), fill(text));
            }
            for (path, text) in RUST_SDK {
                add(Path::new("vendor/retention-sdk/src").join(path), (*text).to_string());
            }
            add(
                PathBuf::from("vendor/retention-sdk/Cargo.toml"),
                standalone_manifest(RUST_SDK_MANIFEST),
            );
        }
        Lang::Python => {
            for (path, text) in PYTHON_TEMPLATE {
                add(PathBuf::from(path), fill(text));
            }
            for (path, text) in PYTHON_SDK {
                add(Path::new("retention_sdk").join(path), (*text).to_string());
            }
        }
        Lang::Ts => {
            for (path, text) in TS_TEMPLATE {
                add(PathBuf::from(path), fill(text));
            }
            for (path, text) in TS_SDK {
                add(Path::new("vendor/retention-sdk").join(path), (*text).to_string());
            }
        }
    }
    out.push((PathBuf::from("wit/retention.wit"), WIT.to_string()));
    out
}

/// The SDK's manifest outside the guest workspace: the workspace's inherited fields made explicit.
fn standalone_manifest(manifest: &str) -> String {
    manifest
        .lines()
        .map(|l| match l.trim() {
            "version.workspace = true" => "version = \"0.1.0\"".to_string(),
            "edition.workspace = true" => "edition = \"2024\"".to_string(),
            "rust-version.workspace = true" => "rust-version = \"1.95.0\"".to_string(),
            "license.workspace = true" => "license = \"Apache-2.0\"".to_string(),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Checks a project name: it becomes a crate, an npm package and a file name, so the intersection of their rules.
fn check_name(name: &str) -> Result<(), UsageError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(UsageError(format!(
            "invalid plugin name {name:?}: use 1 to 64 lower-case letters, digits and single dashes, starting with a \
             letter (e.g. `keep-audit-logs`)"
        )))
    }
}

/// `retention plugin new`: writes the project into `dir` (default `./NAME`), which must not exist or be empty.
pub(super) fn new(name: &str, lang: Lang, dir: Option<&Path>, out: &mut impl Write) -> anyhow::Result<i32> {
    check_name(name)?;
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    match std::fs::read_dir(&dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(UsageError(format!(
                    "{} exists and is not empty: choose another name or `--dir`, or remove it",
                    dir.display()
                ))
                .into());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
    let files = project_files(lang, name);
    for (path, text) in &files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        if path.extension().is_some_and(|e| e == "sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    writeln!(
        out,
        "created {} ({} files), a {} plugin project:",
        dir.display(),
        files.len(),
        lang_name(lang)
    )?;
    writeln!(out, "  cd {}", dir.display())?;
    for step in next_steps(lang, name) {
        writeln!(out, "  {step}")?;
    }
    Ok(0)
}

fn lang_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "Rust",
        Lang::Python => "Python",
        Lang::Ts => "TypeScript",
    }
}

/// The commands the project's README gives, in order.
fn next_steps(lang: Lang, name: &str) -> Vec<String> {
    let snake = name.replace('-', "_");
    let test = |wasm: &str| {
        format!(
            "retention plugin test {wasm} --segments fixture.json --param drop_after_days=30 \
             --now 2026-02-01T00:00:00Z"
        )
    };
    match lang {
        Lang::Rust => vec![
            "cargo test --target host-tuple".into(),
            "cargo build --release".into(),
            test(&format!("target/wasm32-wasip2/release/{snake}.wasm")),
        ],
        Lang::Python => vec![
            "./test.sh".into(),
            "./build.sh".into(),
            test(&format!("target/{name}.wasm")),
        ],
        Lang::Ts => vec![
            "npm ci".into(),
            "npm test".into(),
            "npm run build".into(),
            test(&format!("target/{name}.quickjs.wasm")),
        ],
    }
}

/// `retention plugin wit`: writes `retention.wit` into `dir` (default `./wit`), or prints it with `-`.
pub(super) fn wit(dir: Option<&Path>, out: &mut impl Write) -> anyhow::Result<i32> {
    let dir = dir.unwrap_or(Path::new("wit"));
    if dir == Path::new("-") {
        out.write_all(WIT.as_bytes())?;
        return Ok(0);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("retention.wit");
    let same = std::fs::read_to_string(&path).is_ok_and(|t| t == WIT);
    if !same {
        // Replaces an older WIT whole or not at all: a build never reads half of one.
        crate::plugin::write_atomically(&path, WIT.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let world = crate::plugin::WORLD;
    let how = if same { "is up to date" } else { "written" };
    writeln!(
        out,
        "{} {how}: package {}, world `plugin` ({world})",
        path.display(),
        package()
    )?;
    Ok(0)
}

/// `retention:policy@0.1.0`, from the WIT itself.
fn package() -> &'static str {
    WIT.lines()
        .find_map(|l| l.trim().strip_prefix("package ")?.strip_suffix(';'))
        .unwrap_or("retention:policy")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_a_crate_an_npm_package_and_a_file_name_are_refused() {
        for ok in ["a", "keep-audit", "rule2"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Rule", "2rule", "a_b", "a--b", "a-", "a b", "é", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_vendored_sdk_manifest_inherits_nothing_from_a_workspace() {
        let m = standalone_manifest(RUST_SDK_MANIFEST);
        assert!(!m.contains(".workspace"), "{m}");
        assert!(m.contains("name = \"retention-sdk\""));
    }

    #[test]
    fn the_wit_names_the_package_the_host_implements() {
        assert_eq!(package(), "retention:policy@0.1.0");
        assert!(crate::plugin::WORLD.starts_with(package().split('@').next().unwrap()));
    }
}
