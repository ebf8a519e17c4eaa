//! The bounds on what a plugin can make the host keep: log lines (from `log` and from stdout/stderr alike), their
//! bytes and length. One place, shared by the log (`host.rs`) and the captured output (`output.rs`).

/// Most log lines kept per pass; later lines are counted, not kept.
pub const MAX_LOG_LINES: usize = 1_000;
/// Most bytes of log text kept per pass.
pub const MAX_LOG_BYTES: usize = 256 << 10;
/// Longest log line kept; longer lines are truncated.
pub const MAX_LOG_LINE_BYTES: usize = 2 << 10;

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}
