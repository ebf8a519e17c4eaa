//! What the host checks in a component's bytes and type before it runs any of its code: that it is a component
//! (not garbage, not a core module), that it exports our policy and imports only what the host provides (naming any
//! import it does not, with the fix for the toolchains that add one), and that its memories fit the cap it will
//! run under (checked before compiling, so that a cap too small costs a clear message, not a compile).

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::PluginError;
use super::bindings::{self, POLICY_EXPORT};

/// The WASI 0.2 packages the host links (to an empty context: they answer, and give nothing).
const PROVIDED_WASI: [&str; 6] = [
    "wasi:io",
    "wasi:clocks",
    "wasi:random",
    "wasi:cli",
    "wasi:filesystem",
    "wasi:sockets",
];

/// Whether an import such as `wasi:cli/stdout@0.2.6` is one the host links.
fn provided_wasi(name: &str) -> bool {
    let Some((package, rest)) = name.split_once('/') else {
        return false;
    };
    let version = rest.split_once('@').map_or("", |(_, v)| v);
    PROVIDED_WASI.contains(&package) && version.starts_with("0.2.")
}

/// What to do about an import the host does not provide, for the toolchains known to add one.
fn import_hint(name: &str) -> String {
    let package = name.split('/').next().unwrap_or(name);
    let version = name.split_once('@').map_or("", |(_, v)| v);
    if package == "wasi:http" {
        "a plugin has no network. jco / componentize-js (StarlingMonkey) add wasi:http unless told not to: build \
         with `jco componentize --disable all` (or `--disable http fetch-event`; with the componentize-js API, \
         `disableFeatures: ['http', 'fetch-event']`)"
            .into()
    } else if package.starts_with("wasi:") && !version.starts_with("0.2.") {
        format!(
            "the host implements WASI 0.2 (preview 2) only, and this is version {version}: build for WASI 0.2 \
             (componentize-qjs: add `--sync`; Rust: the wasm32-wasip2 target)"
        )
    } else if package.starts_with("wasi:") {
        format!(
            "a plugin's only capabilities are {} and {}, with WASI 0.2's {} linked to an empty context: remove the \
             use of {package} from the plugin",
            bindings::HOST_IMPORT,
            bindings::TYPES_IMPORT,
            PROVIDED_WASI.join(", ")
        )
    } else {
        format!(
            "a plugin may import only {} and {} (and WASI 0.2): build it against the WIT that `retention plugin wit` \
             writes",
            bindings::HOST_IMPORT,
            bindings::TYPES_IMPORT
        )
    }
}

/// The largest initial size, in bytes, of any memory the component's core modules declare: what it needs before
/// its first instruction. `None` when the bytes cannot be parsed (compiling will say why).
pub(super) fn initial_memory_bytes(bytes: &[u8]) -> Option<u64> {
    let mut largest = 0u64;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        // An imported memory is declared, and counted, in the module that defines it.
        if let wasmparser::Payload::MemorySection(reader) = payload.ok()? {
            for memory in reader {
                let m = memory.ok()?;
                let page = 1u64 << m.page_size_log2.unwrap_or(16);
                largest = largest.max(m.initial.saturating_mul(page));
            }
        }
    }
    Some(largest)
}

/// Tells garbage, core modules and components apart before compiling, so that each gets its own message.
pub(super) fn check_header(bytes: &[u8], shown: &str) -> Result<(), PluginError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        let start: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
        return Err(PluginError::NotWasm {
            path: shown.to_string(),
            start: if start.is_empty() {
                "nothing (empty file)".into()
            } else {
                start.join(" ")
            },
        });
    }
    match bytes[4..8] {
        [1, 0, 0, 0] => Err(PluginError::CoreModule {
            path: shown.to_string(),
        }),
        [_, _, 1, 0] => Ok(()),
        _ => Err(PluginError::Invalid {
            path: shown.to_string(),
            detail: format!("unknown WebAssembly version/layer {:02x?}", &bytes[4..8]),
        }),
    }
}

/// Checks that the component exports our policy interface (in our version) and imports nothing but our host
/// interface and WASI. Returns the import names.
pub(super) fn check_world(engine: &Engine, component: &Component, shown: &str) -> Result<Vec<String>, PluginError> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
    let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
    let wrong = |detail: String| PluginError::WrongWorld {
        path: shown.to_string(),
        detail,
    };
    if !exports.iter().any(|e| e == POLICY_EXPORT) {
        let ours = format!("{}/policy@", bindings::PACKAGE);
        return Err(match exports.iter().find(|e| e.starts_with(&ours)) {
            Some(other) => wrong(format!(
                "it exports {other}, a version this host does not implement (it implements {POLICY_EXPORT})"
            )),
            None => wrong(format!(
                "it does not export {POLICY_EXPORT}; its exports are [{}]",
                exports.join(", ")
            )),
        });
    }
    for (name, item) in ty.imports(engine) {
        if name != bindings::HOST_IMPORT && name != bindings::TYPES_IMPORT && !provided_wasi(name) {
            return Err(PluginError::UnsupportedImport {
                path: shown.to_string(),
                import: name.to_string(),
                hint: import_hint(name),
            });
        }
        if !matches!(item.ty, ComponentItem::ComponentInstance(_)) {
            return Err(wrong(format!("its import {name} is not an interface")));
        }
    }
    Ok(imports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wasi_0_2_of_the_linked_packages_counts_as_provided() {
        for ok in [
            "wasi:cli/stdout@0.2.6",
            "wasi:io/streams@0.2.0",
            "wasi:sockets/tcp@0.2.9",
        ] {
            assert!(provided_wasi(ok), "{ok}");
        }
        for no in [
            "wasi:http/types@0.2.3",
            "wasi:cli/stdout@0.3.0",
            "wasi:keyvalue/store@0.2.0-draft",
            "wasi:cli",
        ] {
            assert!(!provided_wasi(no), "{no}");
        }
    }

    #[test]
    fn each_unprovided_import_gets_the_fix_for_the_toolchain_that_adds_it() {
        assert!(import_hint("wasi:http/outgoing-handler@0.2.3").contains("jco componentize --disable all"));
        assert!(import_hint("wasi:http/types@0.2.0").contains("disableFeatures: ['http', 'fetch-event']"));
        assert!(import_hint("wasi:cli/stdout@0.3.0-rc-2025-09-16").contains("componentize-qjs: add `--sync`"));
        assert!(import_hint("wasi:keyvalue/store@0.2.0-draft").contains("remove the use of wasi:keyvalue"));
        assert!(import_hint("acme:telemetry/emit@1.0.0").contains("retention plugin wit"));
    }

    #[test]
    fn the_start_size_is_the_largest_initial_memory_of_any_module() {
        // A core module with one memory of 3 pages (192 KiB), wrapped as nothing else: parse_all reads it directly.
        let module: &[u8] = &[0, b'a', b's', b'm', 1, 0, 0, 0, 5, 3, 1, 0, 3];
        assert_eq!(initial_memory_bytes(module), Some(3 << 16));
        assert_eq!(initial_memory_bytes(b"\0asm\x01\0\0\0"), Some(0));
        assert_eq!(initial_memory_bytes(b"garbage"), None);
    }
}
