"""A plugin's answer for one segment: an `Action` and an optional reason."""

from .types import ACTIONS, Action


class Decision:
    """What to do with one segment, and why. Immutable; make one with `Decision.keep()`, `.compress(reason)`,
    `.archive(reason)`, `.drop(reason)` or `Decision(action, reason)`.

    A reason is shown in plans, reports and the audit trail (the host cuts it at 512 bytes). The SDK sends each
    distinct text once per batch, so returning the same text for many segments is cheap; an empty text or `None` is
    no reason.
    """

    __slots__ = ("_code", "_reason")

    def __init__(self, action, reason=None):
        if isinstance(action, str):
            action = Action.parse(action)
        code = int(action)
        if not 0 <= code <= 3:
            raise ValueError("%r is not an action (0 keep, 1 compress, 2 archive, 3 drop)" % (action,))
        object.__setattr__(self, "_code", code)
        object.__setattr__(self, "_reason", _reason(reason))

    def __setattr__(self, name, value):
        raise AttributeError("a Decision is immutable: use .because(reason) for another reason")

    @staticmethod
    def keep(reason=None):
        """Leave the segment as it is."""
        return _KEEP if reason is None else Decision(Action.KEEP, reason)

    @staticmethod
    def compress(reason=None):
        """Compress a hot segment in place (only allowed from hot)."""
        return Decision(Action.COMPRESS, reason)

    @staticmethod
    def archive(reason=None):
        """Move a hot or compressed segment to the archive (not allowed from archived)."""
        return Decision(Action.ARCHIVE, reason)

    @staticmethod
    def drop(reason=None):
        """Remove the segment from whatever tier it is in."""
        return Decision(Action.DROP, reason)

    def because(self, reason):
        """The same action with this reason instead."""
        return Decision(self._code, reason)

    @property
    def action(self):
        return ACTIONS[self._code]

    @property
    def reason(self):
        """The reason's text, `None` without one."""
        return self._reason

    def __eq__(self, other):
        return isinstance(other, Decision) and self._code == other._code and self._reason == other._reason

    def __hash__(self):
        return hash((self._code, self._reason))

    def __repr__(self):
        if self._reason is None:
            return "Decision.%s()" % ACTIONS[self._code]
        return "Decision.%s(%r)" % (ACTIONS[self._code], self._reason)


def _reason(reason):
    if reason is None:
        return None
    if not isinstance(reason, str):
        reason = str(reason)
    return reason or None


_KEEP = Decision(Action.KEEP)
