"""The contract's value types (tiers, actions, log levels, totals) with the helpers plugins need."""

from enum import IntEnum


class Tier(IntEnum):
    """Where a segment's bytes live now. Ordered: hot, then compressed, then archived; the value is the code the
    contract sends (`segment-batch.tiers`)."""

    HOT = 0
    COMPRESSED = 1
    ARCHIVED = 2

    def __str__(self):
        return _TIER_NAMES[self]

    def __format__(self, spec):
        return format(_TIER_NAMES[self], spec)

    @property
    def is_local(self):
        """Whether the bytes are on the dataset's own storage (hot or compressed), not in the archive."""
        return self is not Tier.ARCHIVED

    @classmethod
    def parse(cls, name):
        """The tier named `hot`, `compressed` or `archived` (any case); a `Tier` is returned as is."""
        if isinstance(name, Tier):
            return name
        try:
            return _TIER_BY_NAME[str(name).lower()]
        except KeyError:
            raise ValueError("unknown tier %r (expected hot, compressed or archived)" % (name,)) from None


_TIER_NAMES = ("hot", "compressed", "archived")
_TIER_BY_NAME = {"hot": Tier.HOT, "compressed": Tier.COMPRESSED, "archived": Tier.ARCHIVED}
#: `Tier` by code, for the per-segment path (faster than `Tier(code)`).
TIERS = (Tier.HOT, Tier.COMPRESSED, Tier.ARCHIVED)


class Action(IntEnum):
    """What to do with a segment; the value is the code the contract expects (`verdicts.actions`)."""

    KEEP = 0
    COMPRESS = 1
    ARCHIVE = 2
    DROP = 3

    def __str__(self):
        return _ACTION_NAMES[self]

    def __format__(self, spec):
        return format(_ACTION_NAMES[self], spec)

    def allowed_from(self, tier):
        """The contract's tier table: `keep` and `drop` from any tier, `compress` only from hot, `archive` from hot
        or compressed. A decision outside it fails the pass."""
        return ALLOWED[tier][self]

    @classmethod
    def parse(cls, name):
        """The action named `keep`, `compress`, `archive` or `drop` (any case); an `Action` is returned as is."""
        if isinstance(name, Action):
            return name
        try:
            return _ACTION_BY_NAME[str(name).lower()]
        except KeyError:
            raise ValueError("unknown action %r (expected keep, compress, archive or drop)" % (name,)) from None


_ACTION_NAMES = ("keep", "compress", "archive", "drop")
_ACTION_BY_NAME = {n: Action(i) for i, n in enumerate(_ACTION_NAMES)}
ACTIONS = (Action.KEEP, Action.COMPRESS, Action.ARCHIVE, Action.DROP)

#: ALLOWED[tier code][action code]: the contract's tier table.
ALLOWED = (
    (True, True, True, True),  # hot
    (True, False, True, True),  # compressed
    (True, False, False, True),  # archived
)


class LogLevel(IntEnum):
    """Severity of a log line."""

    DEBUG = 0
    INFO = 1
    WARN = 2
    ERROR = 3

    def __str__(self):
        return self.name.lower()

    def __format__(self, spec):
        return format(self.name.lower(), spec)


class TierTotals:
    """Number and total size (as stored) of a dataset's segments in one tier."""

    __slots__ = ("segments", "bytes")

    def __init__(self, segments=0, bytes=0):
        self.segments = segments
        self.bytes = bytes

    def __eq__(self, other):
        return isinstance(other, TierTotals) and (self.segments, self.bytes) == (other.segments, other.bytes)

    def __repr__(self):
        return "TierTotals(segments=%d, bytes=%d)" % (self.segments, self.bytes)


class DatasetTotals:
    """The dataset's totals per tier at the start of the pass."""

    __slots__ = ("hot", "compressed", "archived")

    def __init__(self, hot=None, compressed=None, archived=None):
        self.hot = hot or TierTotals()
        self.compressed = compressed or TierTotals()
        self.archived = archived or TierTotals()

    @classmethod
    def _from_record(cls, t):
        return cls(
            TierTotals(t.hot.segments, t.hot.bytes),
            TierTotals(t.compressed.segments, t.compressed.bytes),
            TierTotals(t.archived.segments, t.archived.bytes),
        )

    def tier(self, tier):
        """The totals of one tier."""
        return (self.hot, self.compressed, self.archived)[tier]

    @property
    def segments(self):
        """Number of segments in the pass (all tiers); the last segment's index is this minus one."""
        return self.hot.segments + self.compressed.segments + self.archived.segments

    @property
    def bytes(self):
        """Bytes in all tiers, as stored."""
        return self.hot.bytes + self.compressed.bytes + self.archived.bytes

    @property
    def local_bytes(self):
        """Bytes on the dataset's own storage: hot plus compressed."""
        return self.hot.bytes + self.compressed.bytes

    @property
    def local_segments(self):
        """Segments on the dataset's own storage: hot plus compressed."""
        return self.hot.segments + self.compressed.segments

    def __eq__(self, other):
        return isinstance(other, DatasetTotals) and all(
            getattr(self, t) == getattr(other, t) for t in ("hot", "compressed", "archived")
        )

    def __repr__(self):
        return "DatasetTotals(hot=%r, compressed=%r, archived=%r)" % (self.hot, self.compressed, self.archived)
