//! The host's imports (`host.log`, `host.batch-names`) as the rest of the SDK calls them.
//!
//! In a component (`wasm32`) they are the generated bindings, re-exported without a wrapper, so the plugin's code is
//! the same as if it called the bindings itself. On any other target the generated imports only panic, so they are
//! replaced by a stand-in per thread, which the `testing` module fills: it serves the names of the batch being
//! decided and collects log lines within the host's bounds. Outside a testing run the stand-in behaves like the host
//! outside `observe` and `decide` (no names) and writes log lines to stderr, so that a plugin's own unit tests can
//! call code that logs.

#[cfg(target_arch = "wasm32")]
pub(crate) use crate::bindings::retention::policy::host::{batch_names, log};

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use native::{batch_names, log};

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod native {
    //! The per-thread stand-in for the host's imports (see the parent module).

    use std::cell::RefCell;

    use crate::bindings::retention::policy::host::{LogLevel, SegmentNames};

    /// Most log lines the host keeps per pass; later ones are counted, not kept (`MAX_LOG_LINES` in the host).
    pub(crate) const MAX_LOG_LINES: usize = 1_000;
    /// Most bytes of log text the host keeps per pass (`MAX_LOG_BYTES`).
    pub(crate) const MAX_LOG_BYTES: usize = 256 << 10;
    /// Longest log line the host keeps; longer ones are cut (`MAX_LOG_LINE_BYTES`; also the bound of a plugin's
    /// error message).
    pub(crate) const MAX_LOG_LINE_BYTES: usize = 2 << 10;

    /// What the host would hold for the current pass: its log and the current batch's names.
    #[derive(Default)]
    pub(crate) struct Capture {
        /// The log lines kept, in order.
        pub lines: Vec<(LogLevel, String)>,
        /// Bytes of text in `lines`.
        pub bytes: usize,
        /// Lines not kept because a bound was reached.
        pub dropped: u64,
        /// The names `batch-names` answers: `Some` only during an `observe` or `decide` call.
        pub names: Option<SegmentNames>,
    }

    impl Capture {
        /// Keeps a line the way the host's log sink does: nothing once a bound is reached, lines cut to a maximum.
        fn push(&mut self, level: LogLevel, message: &str) {
            if self.lines.len() >= MAX_LOG_LINES || self.bytes >= MAX_LOG_BYTES {
                self.dropped += 1;
                return;
            }
            let message = truncated(message, MAX_LOG_LINE_BYTES);
            self.bytes += message.len();
            self.lines.push((level, message.to_string()));
        }
    }

    thread_local! {
        /// The capture of the testing run on this thread, `None` outside one.
        static CAPTURE: RefCell<Option<Capture>> = const { RefCell::new(None) };
    }

    /// `host.log`.
    pub(crate) fn log(level: LogLevel, message: &str) {
        CAPTURE.with_borrow_mut(|capture| match capture {
            Some(c) => c.push(level, message),
            None => eprintln!("plugin log ({level}): {message}"),
        });
    }

    /// `host.batch-names`: the current batch's names, none outside a call (as the host answers).
    pub(crate) fn batch_names() -> SegmentNames {
        CAPTURE.with_borrow(|capture| {
            capture.as_ref().and_then(|c| c.names.clone()).unwrap_or(SegmentNames {
                text: String::new(),
                ends: Vec::new(),
            })
        })
    }

    /// Capturing on this thread until dropped (also when a plugin panics, so that the next test starts clean).
    pub(crate) struct Capturing(());

    impl Capturing {
        /// Starts capturing.
        ///
        /// # Panics
        ///
        /// When this thread already captures: a testing run inside a plugin's `begin`, `observe` or `decide` would
        /// mix two passes' logs and names.
        pub(crate) fn start() -> Capturing {
            CAPTURE.with_borrow_mut(|capture| {
                assert!(
                    capture.is_none(),
                    "a testing run started inside another one on the same thread"
                );
                *capture = Some(Capture::default());
            });
            Capturing(())
        }

        /// Sets the names `batch-names` answers (`None`: no call in progress).
        pub(crate) fn set_names(&self, names: Option<SegmentNames>) {
            CAPTURE.with_borrow_mut(|capture| {
                if let Some(c) = capture {
                    c.names = names;
                }
            });
        }

        /// Stops capturing and returns the log (at the end of a run, whether it succeeded or failed).
        pub(crate) fn finish(self) -> Capture {
            CAPTURE.with_borrow_mut(Option::take).unwrap_or_default()
        }
    }

    impl Drop for Capturing {
        fn drop(&mut self) {
            CAPTURE.with_borrow_mut(|capture| *capture = None);
        }
    }

    /// `text` cut to at most `max` bytes on a character boundary, as the host cuts log lines, messages and reasons.
    pub(crate) fn truncated(text: &str, max: usize) -> &str {
        let mut end = text.len().min(max);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        &text[..end]
    }
}
