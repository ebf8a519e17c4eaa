//! The two compilers a plugin's code can come from, and an engine per compiler: Cranelift (optimising; what passes
//! run, and what the disk cache holds) and Winch (wasmtime's baseline compiler: a large component compiles in a fifth
//! of the time, so that a new version of a Python or JavaScript plugin serves within seconds). Both engines have the
//! same sandbox: epoch deadlines, the pooling allocator sized by the memory cap, our world's linker.

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::Plugin;
use super::host::HostState;
use super::wasm_err;
use crate::config::RuntimeConfig;

/// Which compiler made a loaded plugin's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compiler {
    /// Cranelift, the optimising compiler: the code every pass should run; cached on disk.
    Cranelift,
    /// Winch, wasmtime's baseline compiler: about 5x faster to compile a large component, its code a little slower.
    /// A new version serves on it at once while Cranelift compiles in the background.
    Winch,
}

impl Compiler {
    pub fn as_str(self) -> &'static str {
        match self {
            Compiler::Cranelift => "cranelift",
            Compiler::Winch => "winch",
        }
    }
}

/// One engine (one compiler) and the linker of our world for it.
pub(super) struct Tier {
    pub(super) engine: Engine,
    pub(super) linker: Linker<HostState>,
}

impl Tier {
    pub(super) fn new(limits: &RuntimeConfig, compiler: Compiler) -> anyhow::Result<Tier> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        if compiler == Compiler::Winch {
            config.strategy(wasmtime::Strategy::Winch);
        }
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(256)
            .total_core_instances(2_048)
            .total_memories(256)
            .total_tables(1_024)
            .max_memories_per_component(8)
            .max_memory_size(limits.memory_limit_bytes);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(wasm_err)?;
        let mut linker = Linker::new(&engine);
        // Plugins built with wasi-libc import WASI interfaces even when unused; linking them to an empty context
        // lets such plugins load while giving them nothing.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(wasm_err)?;
        Plugin::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(wasm_err)?;
        Ok(Tier { engine, linker })
    }
}
