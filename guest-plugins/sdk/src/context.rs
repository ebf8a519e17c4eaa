//! The pass context handed to [`Plugin::begin`](crate::Plugin::begin): the pass's "now", the dataset, its totals and
//! the parameters configured for it, with typed parameter parsing that produces clear error messages.

use std::fmt::Display;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::bindings::retention::policy::types::PassContext;
use crate::types::DatasetTotals;

/// What a plugin learns about a pass before the first segment.
#[derive(Debug)]
pub struct Context {
    inner: PassContext,
}

impl Context {
    pub(crate) fn new(inner: PassContext) -> Context {
        Context { inner }
    }

    /// Unique identifier of the pass (also in the host's reports and logs).
    pub fn pass_id(&self) -> &str {
        &self.inner.pass_id
    }

    /// Name of the dataset being decided.
    pub fn dataset(&self) -> &str {
        &self.inner.dataset
    }

    /// The pass's "now" in milliseconds since the Unix epoch (UTC). Plugins have no clock: deciding against this
    /// value keeps decisions reproducible (`retention plugin test --now`).
    pub fn now_ms(&self) -> i64 {
        self.inner.now_ms
    }

    /// The pass's "now" as a [`SystemTime`].
    pub fn now(&self) -> SystemTime {
        ms_to_system_time(self.inner.now_ms)
    }

    /// True when the host will only report the plan. Decide exactly as in a real pass.
    pub fn dry_run(&self) -> bool {
        self.inner.dry_run
    }

    /// The dataset's segment counts and sizes per tier at the start of the pass.
    pub fn totals(&self) -> &DatasetTotals {
        &self.inner.totals
    }

    /// All parameters, sorted by key, as `(key, value)`.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.inner.params.iter().map(|p| (p.key.as_str(), p.value.as_str()))
    }

    /// The raw value of a parameter, if it is set.
    pub fn param_str(&self, key: &str) -> Option<&str> {
        self.inner
            .params
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.as_str())
    }

    /// A required parameter, parsed with [`FromStr`]. Errors name the parameter and the value, e.g.
    /// ``parameter `keep_daily` = "x": invalid digit found in string``.
    pub fn param<T>(&self, key: &str) -> Result<T, String>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.param_opt(key)?
            .ok_or_else(|| format!("missing required parameter `{key}`"))
    }

    /// An optional parameter, parsed with [`FromStr`]: `Ok(None)` when it is not set.
    pub fn param_opt<T>(&self, key: &str) -> Result<Option<T>, String>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.param_str(key) {
            None => Ok(None),
            Some(raw) => parse_param(key, raw).map(Some),
        }
    }

    /// An optional parameter with a default for when it is not set; a value that is set but malformed is an error.
    pub fn param_or<T>(&self, key: &str, default: T) -> Result<T, String>
    where
        T: FromStr,
        T::Err: Display,
    {
        Ok(self.param_opt(key)?.unwrap_or(default))
    }

    /// Fails when a parameter is not in `known`: a misspelt key otherwise silently means "use the default", which
    /// for a retention rule can mean keeping or deleting the wrong data.
    pub fn check_params(&self, known: &[&str]) -> Result<(), String> {
        self.check_params_with(known, |_| false)
    }

    /// Like [`check_params`](Context::check_params), but also accepts keys for which `also` returns true (for
    /// families of keys such as `override.<label>=<value>.<name>`).
    pub fn check_params_with(&self, known: &[&str], also: impl Fn(&str) -> bool) -> Result<(), String> {
        for (key, _) in self.params() {
            if !known.contains(&key) && !also(key) {
                let mut expected = known.join(", ");
                if expected.is_empty() {
                    expected.push_str("none");
                }
                return Err(format!("unknown parameter `{key}` (expected: {expected})"));
            }
        }
        Ok(())
    }
}

/// Parses one parameter value, naming the key, the value and the expected type on failure.
pub(crate) fn parse_param<T>(key: &str, raw: &str) -> Result<T, String>
where
    T: FromStr,
    T::Err: Display,
{
    raw.trim().parse::<T>().map_err(|e| {
        let ty = std::any::type_name::<T>();
        let ty = ty.rsplit("::").next().unwrap_or(ty);
        format!("parameter `{key}` = {raw:?}: expected {ty}: {e}")
    })
}

/// Milliseconds since the Unix epoch as a [`SystemTime`] (before the epoch too).
pub(crate) fn ms_to_system_time(ms: i64) -> SystemTime {
    let d = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 { UNIX_EPOCH + d } else { UNIX_EPOCH - d }
}
