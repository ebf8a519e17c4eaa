//! Log lines to the host (`host.log`): the host tags them with the plugin and the pass, and bounds how many it keeps.

use crate::bindings::retention::policy::host;

pub use crate::bindings::retention::policy::host::LogLevel;

/// Writes a line to the host's log. Prefer the [`log!`](crate::log!) macro, which formats.
pub fn log(level: LogLevel, message: &str) {
    host::log(level, message);
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
