//! A plugin's answer for one segment: an [`Action`] and an optional human-readable [`Reason`].

use std::borrow::Cow;
use std::rc::Rc;

use crate::types::Action;

/// Why a decision was made, shown in plans, reports and the audit trail (the host truncates it to 512 bytes).
///
/// Reasons are interned per batch, so returning the same text for many segments costs one string on the boundary.
/// The cheapest form is a `&'static str` literal, recognised by address without hashing. A text that is the same for
/// the whole pass but built at run time (e.g. from parameters) is best made once as an `Rc<str>` and cloned into
/// each decision: no allocation per segment, and it is recognised by address too.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Reason {
    /// No reason.
    #[default]
    None,
    /// A string literal (or any other string that lives, unchanged, for the whole program).
    Static(&'static str),
    /// A shared, immutable text, typically made once in `begin`.
    Shared(Rc<str>),
    /// A string made for this decision (e.g. with `format!`).
    Owned(String),
}

impl Reason {
    /// The reason's text; `None` for no reason or an empty text.
    pub fn as_str(&self) -> Option<&str> {
        let s: &str = match self {
            Reason::None => return None,
            Reason::Static(s) => s,
            Reason::Shared(s) => s,
            Reason::Owned(s) => s,
        };
        if s.is_empty() { None } else { Some(s) }
    }
}

impl From<&'static str> for Reason {
    fn from(text: &'static str) -> Self {
        Reason::Static(text)
    }
}

impl From<String> for Reason {
    fn from(text: String) -> Self {
        Reason::Owned(text)
    }
}

impl From<Rc<str>> for Reason {
    fn from(text: Rc<str>) -> Self {
        Reason::Shared(text)
    }
}

impl From<&Rc<str>> for Reason {
    fn from(text: &Rc<str>) -> Self {
        Reason::Shared(Rc::clone(text))
    }
}

impl From<Cow<'static, str>> for Reason {
    fn from(text: Cow<'static, str>) -> Self {
        match text {
            Cow::Borrowed(s) => Reason::Static(s),
            Cow::Owned(s) => Reason::Owned(s),
        }
    }
}

impl<T: Into<Reason>> From<Option<T>> for Reason {
    fn from(text: Option<T>) -> Self {
        text.map_or(Reason::None, Into::into)
    }
}

/// What to do with one segment, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Decision {
    action: Action,
    reason: Reason,
}

impl Decision {
    /// A decision with any action and reason.
    pub fn new(action: Action, reason: impl Into<Reason>) -> Self {
        Decision {
            action,
            reason: reason.into(),
        }
    }

    /// Leave the segment as it is, without a reason (add one with [`because`](Decision::because)).
    pub fn keep() -> Self {
        Decision {
            action: Action::Keep,
            reason: Reason::None,
        }
    }

    /// Compress a hot segment in place.
    pub fn compress(reason: impl Into<Reason>) -> Self {
        Decision::new(Action::Compress, reason)
    }

    /// Move a hot or compressed segment to the archive.
    pub fn archive(reason: impl Into<Reason>) -> Self {
        Decision::new(Action::Archive, reason)
    }

    /// Remove the segment from whatever tier it is in.
    pub fn drop(reason: impl Into<Reason>) -> Self {
        Decision::new(Action::Drop, reason)
    }

    /// The same decision with this reason instead.
    pub fn because(self, reason: impl Into<Reason>) -> Self {
        Decision {
            action: self.action,
            reason: reason.into(),
        }
    }

    /// The action.
    pub fn action(&self) -> Action {
        self.action
    }

    /// The reason, if any.
    pub fn reason(&self) -> &Reason {
        &self.reason
    }

    pub(crate) fn into_parts(self) -> (Action, Reason) {
        (self.action, self.reason)
    }
}
