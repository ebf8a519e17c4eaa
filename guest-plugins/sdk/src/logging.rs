//! Log lines to the host (`host.log`): the host tags them with the plugin and the pass, and bounds how many it keeps.
//! Natively (under `cargo test`) they are captured by the `testing` module instead (see `imports.rs`).

use std::fmt;

pub use crate::bindings::retention::policy::host::LogLevel;

impl LogLevel {
    /// The level's name as the host writes it: `debug`, `info`, `warn` or `error`.
    pub const fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Writes a line to the host's log. Prefer the [`log!`](crate::log!) macro, which formats.
pub fn log(level: LogLevel, message: &str) {
    crate::imports::log(level, message);
}

/// Formats and writes a line to the host's log: `log!(info, "kept {} segments", n)`, or with a [`LogLevel`] value:
/// `log!(LogLevel::Warn, "...")`. Level names: `debug`, `info`, `warn`, `error`.
#[macro_export]
macro_rules! log {
    (debug, $($arg:tt)+) => { $crate::log($crate::LogLevel::Debug, &::std::format!($($arg)+)) };
    (info, $($arg:tt)+) => { $crate::log($crate::LogLevel::Info, &::std::format!($($arg)+)) };
    (warn, $($arg:tt)+) => { $crate::log($crate::LogLevel::Warn, &::std::format!($($arg)+)) };
    (error, $($arg:tt)+) => { $crate::log($crate::LogLevel::Error, &::std::format!($($arg)+)) };
    ($level:expr, $($arg:tt)+) => { $crate::log($level, &::std::format!($($arg)+)) };
}
