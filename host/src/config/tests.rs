//! The config's validation, one bad value at a time, and what the whole config tells each dataset.

use super::*;
use crate::store::dir::TimeSource;
use crate::store::dir::config::MAX_TRASH_GRACE_SECS;

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    std::fs::write(dir.path().join("plugins/p.wasm"), b"").unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    dir
}

fn parse(dir: &Path, dataset_extra: &str, dir_extra: &str) -> Result<Config, ConfigError> {
    let text = format!(
        "plugin_dir = \"plugins\"\n[[dataset]]\nname = \"logs\"\nplugin = \"p\"\n{dataset_extra}\n\
         [dataset.directory]\nroot = \"data\"\n{dir_extra}\n"
    );
    Config::parse(&text, dir)
}

#[test]
fn a_minimal_config_gets_protective_defaults() {
    let d = setup();
    let c = parse(d.path(), "", "").unwrap();
    assert_eq!(c.runtime.memory_limit_bytes, 64 << 20);
    assert_eq!(c.runtime.call_timeout, Duration::from_secs(2));
    assert_eq!(c.datasets[0].guard.max_drop_bytes_fraction, 0.5);
    let StoreConfig::Directory(dir) = &c.datasets[0].store else {
        panic!("a directory store")
    };
    assert_eq!(dir.time, TimeSource::Mtime);
    assert!(dir.include.is_match("a/b.log"));
}

#[test]
fn unknown_keys_are_refused_with_their_name() {
    let d = setup();
    let e = parse(d.path(), "colour = \"red\"", "").unwrap_err().to_string();
    assert!(e.contains("unknown field `colour`"), "{e}");
}

#[test]
fn a_bad_regex_names_the_field_and_the_value() {
    let d = setup();
    let e = parse(d.path(), "", "labels = '(?P<x'").unwrap_err().to_string();
    assert!(e.contains("dataset[0].directory.labels") && e.contains("(?P<x"), "{e}");
}

#[test]
fn a_bad_glob_names_the_field_and_the_value() {
    let d = setup();
    let e = parse(d.path(), "", "include = ['a/[b']").unwrap_err().to_string();
    assert!(
        e.contains("dataset[0].directory.include[0]") && e.contains("a/[b"),
        "{e}"
    );
}

#[test]
fn a_missing_plugin_file_is_refused() {
    let d = setup();
    let text = "plugin_dir = \"plugins\"\n[[dataset]]\nname = \"l\"\nplugin = \"nope\"\n[dataset.directory]\nroot = \"data\"\n";
    let config = Config::parse(text, d.path()).expect("the service accepts a plugin that is not there yet");
    let e = config.check_plugin_files().unwrap_err().to_string();
    assert!(e.contains("dataset[0].plugin") && e.contains("nope.wasm"), "{e}");
}

#[test]
fn an_unreachable_archive_directory_is_refused() {
    let d = setup();
    let e = parse(d.path(), "", "archive_url = \"file:///nonexistent/archive\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("archive_url") && e.contains("does not exist"), "{e}");
}

#[test]
fn a_time_label_must_be_a_capture_of_the_regex() {
    let d = setup();
    let e = parse(d.path(), "", "labels = '(?P<day>\\d+)'\ntime = \"label:date\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no named capture \"date\""), "{e}");
    parse(d.path(), "", "labels = '(?P<date>\\d+)'\ntime = \"label:date\"").unwrap();
}

#[test]
fn out_of_range_values_are_refused() {
    let d = setup();
    let e = parse(d.path(), "[dataset.guard]\nmax_drop_bytes_fraction = 1.5", "")
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_drop_bytes_fraction") && e.contains("1.5"), "{e}");
    let e = parse(d.path(), "", "compression_level = 40").unwrap_err().to_string();
    assert!(e.contains("compression_level") && e.contains("40"), "{e}");
}

#[test]
fn the_trash_grace_defaults_to_a_day_and_is_bounded_to_ten_years() {
    let d = setup();
    let dir_of = |c: &Config| match &c.datasets[0].store {
        StoreConfig::Directory(dir) => dir.trash_grace,
        StoreConfig::Postgres(_) => panic!("a directory store"),
    };
    assert_eq!(dir_of(&parse(d.path(), "", "").unwrap()), Duration::from_secs(86_400));
    assert_eq!(
        dir_of(&parse(d.path(), "", "trash_grace_secs = 0").unwrap()),
        Duration::ZERO
    );
    let ten_years = format!("trash_grace_secs = {MAX_TRASH_GRACE_SECS}");
    assert_eq!(
        dir_of(&parse(d.path(), "", &ten_years).unwrap()),
        Duration::from_secs(MAX_TRASH_GRACE_SECS)
    );
    let e = parse(d.path(), "", "trash_grace_secs = 315360001")
        .unwrap_err()
        .to_string();
    assert!(e.contains("trash_grace_secs") && e.contains("315360001"), "{e}");
    let e = parse(d.path(), "", "trash_grace_secs = -1").unwrap_err().to_string();
    assert!(e.contains("trash_grace_secs"), "{e}");
}

#[test]
fn schedules_take_five_or_six_fields_and_a_bad_one_names_its_dataset() {
    let d = setup();
    let c = parse(d.path(), "schedule = \"*/5 * * * *\"", "").unwrap();
    assert_eq!(c.datasets[0].schedule.as_ref().unwrap().0, "*/5 * * * *");
    parse(d.path(), "schedule = \"*/10 * * * * *\"", "").unwrap();
    let e = parse(d.path(), "schedule = \"every day\"", "").unwrap_err().to_string();
    assert!(
        e.contains("dataset[0].schedule") && e.contains("dataset logs") && e.contains("every day"),
        "{e}"
    );
    let e = parse(d.path(), "schedule = \"0 99 * * * *\"", "")
        .unwrap_err()
        .to_string();
    assert!(e.contains("dataset[0].schedule") && e.contains("0 99"), "{e}");
}

#[test]
fn the_service_section_has_loopback_defaults_and_checks_its_values() {
    let d = setup();
    let c = parse(d.path(), "", "").unwrap();
    assert_eq!(c.service.listen.to_string(), "127.0.0.1:9477");
    assert_eq!(c.service.state_dir, d.path().join("retention-state"));
    let text = "plugin_dir = \"plugins\"\n[service]\nlisten = \"localhost\"\n[[dataset]]\nname = \"l\"\n\
                plugin = \"p\"\n[dataset.directory]\nroot = \"data\"\n";
    let e = Config::parse(text, d.path()).unwrap_err().to_string();
    assert!(e.contains("service.listen") && e.contains("localhost"), "{e}");
}

#[test]
fn dotted_param_keys_reach_the_plugin_as_written() {
    let d = setup();
    let c = parse(
        d.path(),
        "params = { override.level.debug.drop_after_days = 7, a = 1 }",
        "",
    )
    .unwrap();
    assert_eq!(
        c.datasets[0].params,
        [
            ("a".into(), "1".into()),
            ("override.level.debug.drop_after_days".into(), "7".into())
        ]
    );
    let e = parse(d.path(), "params = { a = [1, 2] }", "").unwrap_err().to_string();
    assert!(e.contains("dataset[0].params.a"), "{e}");
}

#[test]
fn a_config_shadow_names_another_plugin_and_a_bounded_number_of_passes() {
    let d = setup();
    let c = parse(d.path(), "[dataset.shadow]\nplugin = \"p-next\"\npasses = 5", "").unwrap();
    assert_eq!(
        c.datasets[0].shadow,
        Some(ShadowConfig {
            plugin: "p-next".into(),
            passes: 5
        })
    );
    for (shadow, field, value) in [
        ("plugin = \"../x\"\npasses = 5", "dataset[0].shadow.plugin", "../x"),
        ("plugin = \"p\"\npasses = 5", "dataset[0].shadow.plugin", "\"p\""),
        ("plugin = \"q\"\npasses = 0", "dataset[0].shadow.passes", "0"),
        ("plugin = \"q\"\npasses = 10001", "dataset[0].shadow.passes", "10001"),
    ] {
        let e = parse(d.path(), &format!("[dataset.shadow]\n{shadow}"), "")
            .unwrap_err()
            .to_string();
        assert!(e.contains(field) && e.contains(value), "{e}");
    }
    let e = parse(d.path(), "[dataset.shadow]\nplugin = \"q\"\npasses = 1\ncolour = 1", "")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `colour`"), "{e}");
}

fn dir_of(c: &Config, i: usize) -> &DirectoryConfig {
    let StoreConfig::Directory(d) = &c.datasets[i].store else {
        panic!("a directory store")
    };
    d
}

#[test]
fn the_engines_own_directories_inside_a_root_are_excluded_from_it() {
    let d = setup();
    // Root "." holds the plugin directory and the (default) state directory.
    let text = "plugin_dir = \"plugins\"\n[runtime]\ncache_dir = \"cache\"\n[[dataset]]\nname = \"all\"\n\
                plugin = \"p\"\n[dataset.directory]\nroot = \".\"\narchive_url = \"file://ARCHIVE\"\n"
        .replace("ARCHIVE", &d.path().join("data").display().to_string());
    let c = Config::parse(&text, d.path()).unwrap();
    let mut excluded: Vec<String> = dir_of(&c, 0)
        .excluded
        .iter()
        .map(|e| e.path.strip_prefix(canonical(d.path())).unwrap().display().to_string())
        .collect();
    excluded.sort();
    assert_eq!(excluded, ["cache", "data", "plugins", "retention-state"]);
}

#[test]
fn a_root_inside_an_engine_directory_is_refused() {
    let d = setup();
    std::fs::create_dir_all(d.path().join("retention-state/data")).unwrap();
    for (root, what) in [
        ("retention-state/data", "state directory"),
        ("plugins", "plugin directory"),
    ] {
        let text = format!(
            "plugin_dir = \"plugins\"\n[[dataset]]\nname = \"l\"\nplugin = \"p\"\n[dataset.directory]\n\
             root = \"{root}\"\n"
        );
        let e = Config::parse(&text, d.path()).unwrap_err().to_string();
        assert!(e.contains("dataset[0].directory.root") && e.contains(what), "{e}");
    }
}

#[test]
fn nested_roots_exclude_each_other_and_equal_roots_know_their_siblings() {
    let d = setup();
    std::fs::create_dir_all(d.path().join("data/inner")).unwrap();
    let text = "plugin_dir = \"plugins\"\n\
                [[dataset]]\nname = \"outer\"\nplugin = \"p\"\n[dataset.directory]\nroot = \"data\"\n\
                [[dataset]]\nname = \"inner\"\nplugin = \"p\"\n[dataset.directory]\nroot = \"data/inner\"\n\
                [[dataset]]\nname = \"twin\"\nplugin = \"p\"\n[dataset.directory]\nroot = \"data\"\n\
                include = [\"**/*.json\"]\n";
    let c = Config::parse(text, d.path()).unwrap();
    let outer = dir_of(&c, 0);
    assert_eq!(outer.excluded.len(), 1);
    assert!(outer.excluded[0].path.ends_with("data/inner") && outer.excluded[0].what.contains("inner"));
    assert_eq!(outer.siblings.len(), 1);
    assert_eq!(outer.siblings[0].dataset, "twin");
    assert!(outer.siblings[0].include.is_match("a/b.json"));
    assert!(dir_of(&c, 1).excluded.is_empty() && dir_of(&c, 1).siblings.is_empty());
    assert_eq!(dir_of(&c, 2).siblings[0].dataset, "outer");
}

#[test]
fn two_datasets_never_share_an_archive_location() {
    let d = setup();
    std::fs::create_dir_all(d.path().join("archive/a")).unwrap();
    std::fs::create_dir_all(d.path().join("data2")).unwrap();
    let two = |a: &str, b: &str| {
        format!(
            "plugin_dir = \"plugins\"\n\
             [[dataset]]\nname = \"one\"\nplugin = \"p\"\n[dataset.directory]\nroot = \"data\"\narchive_url = \"{a}\"\n\
             [[dataset]]\nname = \"two\"\nplugin = \"p\"\n[dataset.directory]\nroot = \"data2\"\narchive_url = \"{b}\"\n"
        )
    };
    let archive = d.path().join("archive").display().to_string();
    for (a, b) in [
        ("s3://bucket/logs".to_string(), "s3://bucket/logs".to_string()),
        ("s3://bucket/logs".to_string(), "s3://bucket/logs/app".to_string()),
        ("s3://bucket".to_string(), "s3://bucket/logs".to_string()),
        (format!("file://{archive}"), format!("file://{archive}/a")),
    ] {
        let e = Config::parse(&two(&a, &b), d.path()).unwrap_err().to_string();
        assert!(
            e.contains("dataset[1].directory.archive_url") && e.contains("overlaps the archive of dataset \"one\""),
            "{e}"
        );
    }
    for (a, b) in [
        ("s3://bucket/logs", "s3://bucket/logs-2"),
        ("s3://bucket/logs", "s3://other/logs"),
    ] {
        Config::parse(&two(a, b), d.path()).unwrap();
    }
}

#[test]
fn numeric_params_become_strings_sorted_by_key() {
    let d = setup();
    let c = parse(d.path(), "params = { z = 7, a = \"x\", b = true }", "").unwrap();
    assert_eq!(
        c.datasets[0].params,
        [
            ("a".into(), "x".into()),
            ("b".into(), "true".into()),
            ("z".into(), "7".into())
        ]
    );
}
