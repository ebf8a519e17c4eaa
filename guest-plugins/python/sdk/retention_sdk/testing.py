"""Unit tests for a plugin under plain pytest: describe a pass in code (its "now", parameters and segments), run a
`Plugin` over it, and assert on every segment's decision and reason and on the plugin's log. No `retention` binary,
no JSON fixture, no component::

    from retention_sdk import Action, Tier
    from retention_sdk.testing import Pass, seg

    def test_old_debug_logs_are_dropped():
        out = (
            Pass("2026-03-01T00:00:00Z")
            .param("days", 7)
            .segment(seg("api/debug-2026-02-20.log").age_days(9).label("level", "debug").bytes(100))
            .segment(seg("api/debug-2026-02-28.log").time("2026-02-28T00:00:00Z").label("level", "debug"))
            .run(DropDebug)
        )
        assert out.action("api/debug-2026-02-20.log") == Action.DROP
        assert out.reason("api/debug-2026-02-20.log") == "old debug log"

    def test_a_misspelt_parameter_fails_begin():
        err = Pass("2026-03-01").param("dayz", 7).fail(DropDebug)
        assert (err.call, err.message) == ("begin", "unknown parameter `dayz` (expected: days)")

What runs is what runs in the component: `Pass.run` makes the class `retention_sdk.export` makes for the app
module and calls its `info`, `begin`, `observe` and `decide` (a new instance per call, as componentize-py does) with
the contract's records, so the per-segment API, the symbol table, the reason texts and the SDK's checks are the
component's code. Around it this module plays the host's part, as `retention plugin test` does:

- `info` is checked as at load: name and version of 1 to 128 printable characters.
- The context: the now, the dataset (default `test`), the pass id `test`, dry run (default true), the parameters
  sorted by key (values as text: `True` becomes `true`), the totals per tier counted from the segments.
- `begin`; then, if asked, every batch through `observe`; then every batch through `decide`. Segments come oldest
  first (by end time, then name) in batches of `batch_size` (default 4,096, the host's), columns as the host sends
  them (`tiers` as bytes), each label key and value sent once per pass as a symbol with the first batch that uses
  it. Calls are numbered like the host's errors: `observe (batch 0)`, ..., then `decide (batch n)`, ...
- `host.batch_names` answers the current batch's names (UTF-8 byte offsets, as the host sends them).
- The answers are checked as componentize-py lowers them (`actions` must be `bytes`) and as the host checks them:
  one valid action per segment, allowed from its tier, reasons within the reason texts. Reasons are cut at 512
  bytes, messages and log lines at 2 KiB, and the log keeps at most 1,000 lines and 256 KiB per pass.

Not simulated: the deadline per call, the memory cap, and the component's import restrictions (a module imported
lazily inside `decide` works here but not in a component: import at the top).
"""

import re
from dataclasses import dataclass
from typing import List, Optional

from . import _native
from .runtime import export
from .types import ACTIONS, Action, DatasetTotals, LogLevel, Tier, TierTotals
from .units import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS, _quote

#: Segments per `observe` / `decide` call unless `Pass.batch_size` says otherwise: the host's default.
DEFAULT_BATCH_SIZE = 4096
#: The host cuts reason texts to this many bytes.
MAX_REASON_BYTES = 512
#: The longest plugin name or version the host accepts.
MAX_INFO_BYTES = 128

__all__ = ["Pass", "seg", "TestSegment", "Outcome", "Decided", "LogLine", "Failure", "parse_time", "DEFAULT_BATCH_SIZE"]


# --- times ------------------------------------------------------------------------------------------------------

_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2})))?",
    re.ASCII,
)


def _days_from_civil(y, m, d):
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _month_days(y, m):
    if m == 2:
        return 29 if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0 else 28
    return 30 if m in (4, 6, 9, 11) else 31


def parse_time(text):
    """Milliseconds since the Unix epoch from RFC 3339 (`2026-03-01T00:00:00Z`, `...T01:00:00.5+01:00`) or a date
    alone (`2026-03-01`, midnight UTC); fractions below a millisecond are dropped. Raises `ValueError`."""
    m = _TIME.fullmatch(text) if isinstance(text, str) else None
    bad = '%s is not an RFC 3339 time (e.g. 2026-03-01T00:00:00Z) or a date (2026-03-01)' % _quote(str(text))
    if m is None:
        raise ValueError(bad)
    y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if not (1 <= mo <= 12 and 1 <= d <= _month_days(y, mo)):
        raise ValueError(bad)
    ms = _days_from_civil(y, mo, d) * DAY_MS
    if m.group(4) is None:
        return ms
    h, mi, s = int(m.group(4)), int(m.group(5)), int(m.group(6))
    if h > 23 or mi > 59 or s > 59:
        raise ValueError(bad)
    frac = (m.group(7) or "")[:3].ljust(3, "0")
    offset = 0
    if m.group(8) is None:
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            raise ValueError(bad)
        offset = (1 if m.group(9) == "+" else -1) * (oh * HOUR_MS + om * MINUTE_MS)
    return ms + h * HOUR_MS + mi * MINUTE_MS + s * SECOND_MS + int(frac) - offset


# --- segments ---------------------------------------------------------------------------------------------------


def seg(name):
    """A segment named `name`: hot, ending at the pass's now, 0 bytes, rows unknown, no labels. Change any of it with
    the `TestSegment` methods (each returns a new segment)."""
    return TestSegment(str(name))


class TestSegment:
    """A segment of a test `Pass`, made by `seg`. Immutable: every method returns a changed copy."""

    __test__ = False  # not a pytest test class
    __slots__ = ("_name", "_tier", "_end", "_start", "_bytes", "_rows", "_labels")

    def __init__(self, name):
        self._name = name
        self._tier = Tier.HOT
        self._end = ("ago", 0)
        self._start = ("end", 0)
        self._bytes = 0
        self._rows = None
        self._labels = ()

    def _with(self, **changes):
        other = TestSegment.__new__(TestSegment)
        for slot in TestSegment.__slots__:
            object.__setattr__(other, slot, changes.get(slot[1:], getattr(self, slot)))
        return other

    @property
    def name(self):
        return self._name

    def tier(self, tier):
        """The tier it is in (a `Tier`, or `hot`, `compressed`, `archived`; default hot)."""
        return self._with(tier=Tier.parse(tier))

    def time(self, time):
        """Its end, as RFC 3339 or a date (the `time` of a `retention plugin test` fixture)."""
        return self._with(end=("at", parse_time(time)))

    def end_ms(self, ms):
        """Its end in milliseconds since the Unix epoch."""
        return self._with(end=("at", int(ms)))

    def age_ms(self, age_ms):
        """Ends `age_ms` milliseconds before the pass's now (negative: in the future)."""
        return self._with(end=("ago", int(age_ms)))

    def age_days(self, days):
        """Ends exactly `days` days before the pass's now, so that `seg.age_days()` is `days`."""
        return self.age_ms(int(days) * DAY_MS)

    def start(self, time):
        """Its start, as RFC 3339 or a date (default: its end)."""
        return self._with(start=("at", parse_time(time)))

    def start_ms(self, ms):
        """Its start in milliseconds since the Unix epoch."""
        return self._with(start=("at", int(ms)))

    def span_ms(self, span_ms):
        """Starts `span_ms` milliseconds before its end, wherever the end is."""
        return self._with(start=("before", int(span_ms)))

    def bytes(self, n):
        """Its size in bytes as stored (default 0)."""
        return self._with(bytes=int(n))

    def rows(self, n):
        """Its number of rows (default unknown)."""
        return self._with(rows=int(n))

    def label(self, key, value):
        """A label; setting a key again replaces its value."""
        labels = [(k, v) for k, v in self._labels if k != key]
        labels.append((str(key), str(value)))
        return self._with(labels=tuple(labels))

    def __repr__(self):
        return "seg(%r)" % self._name


@dataclass
class _Resolved:
    input: int
    name: str
    tier: Tier
    start_ms: int
    end_ms: int
    bytes: int
    rows: Optional[int]
    labels: list  # sorted by key


# --- results ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decided:
    """One segment's decision in a test pass."""

    name: str
    tier: Tier
    action: Action
    reason: Optional[str]  # as the host records it (cut at 512 bytes)
    index: int  # position in the pass: 0 for the oldest


@dataclass(frozen=True)
class LogLine:
    level: LogLevel
    message: str


class Outcome:
    """What a successful pass produced: a decision per segment and the plugin's log."""

    def __init__(self, decisions, observed_first, logs, logs_dropped):
        self._decisions = decisions
        self._observed_first = observed_first
        self._logs = logs
        self._logs_dropped = logs_dropped

    def decisions(self) -> List[Decided]:
        """Every segment's decision, in the order the segments were added to the pass."""
        return list(self._decisions)

    def decision(self, name) -> Decided:
        for d in self._decisions:
            if d.name == name:
                return d
        raise KeyError("no segment %r in the pass (it has %r)" % (name, [d.name for d in self._decisions]))

    def action(self, name) -> Action:
        return self.decision(name).action

    def reason(self, name) -> Optional[str]:
        return self.decision(name).reason

    def names_with(self, action) -> List[str]:
        """The names of the segments with this action, oldest first."""
        action = Action.parse(action)
        return [d.name for d in sorted(self._decisions, key=lambda d: d.index) if d.action == action]

    def plan(self):
        """(name, action, reason) of every segment, oldest first."""
        return [(d.name, d.action, d.reason) for d in sorted(self._decisions, key=lambda d: d.index)]

    def logs(self) -> List[LogLine]:
        return list(self._logs)

    def logs_dropped(self) -> int:
        return self._logs_dropped

    def observed_first(self) -> bool:
        return self._observed_first


class Failure(Exception):
    """The failure that fails a test pass: the failing call (`info`, `begin`, `observe (batch 0)`,
    `decide (batch 2)`, named as in the host's errors), its message, and the lines logged before."""

    def __init__(self, call, message, logs=(), logs_dropped=0):
        Exception.__init__(self, "%s: %s" % (call, message))
        self.call = call
        self.message = message
        self.logs = list(logs)
        self.logs_dropped = logs_dropped

    def __str__(self):
        return "%s: %s" % (self.call, self.message)


class _CallFailed(Exception):
    def __init__(self, call, message):
        Exception.__init__(self, call, message)
        self.call = call
        self.message = message


# --- the pass ---------------------------------------------------------------------------------------------------


def _param_text(value):
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


class Pass:
    """A pass to run a plugin over. Immutable: every method returns a changed copy, so a base pass can be shared.

    Defaults: dataset `test`, pass id `test`, dry run, no parameters, no segments, batches of 4,096.
    """

    __test__ = False

    def __init__(self, now):
        """`now` as RFC 3339 (`2026-03-01T00:00:00Z`), a date (`2026-03-01`), or milliseconds since the epoch."""
        self._now_ms = now if isinstance(now, int) else parse_time(now)
        self._dataset = "test"
        self._pass_id = "test"
        self._dry_run = True
        self._params = ()
        self._segments = ()
        self._batch_size = DEFAULT_BATCH_SIZE

    @classmethod
    def at_ms(cls, now_ms):
        return cls(int(now_ms))

    def _with(self, **changes):
        other = Pass.__new__(Pass)
        other.__dict__.update(self.__dict__)
        for k, v in changes.items():
            setattr(other, "_" + k, v)
        return other

    def dataset(self, name):
        return self._with(dataset=str(name))

    def pass_id(self, id):
        return self._with(pass_id=str(id))

    def dry_run(self, dry_run):
        return self._with(dry_run=bool(dry_run))

    def param(self, key, value):
        """A parameter; values reach the plugin as text (`7` and `"7"` are the same, `True` is `true`). Setting a
        key again replaces its value."""
        params = [(k, v) for k, v in self._params if k != key]
        params.append((str(key), _param_text(value)))
        return self._with(params=tuple(params))

    def segment(self, segment):
        """Adds a segment (any order: the plugin sees them oldest first)."""
        return self._with(segments=self._segments + (segment,))

    def segments(self, segments):
        return self._with(segments=self._segments + tuple(segments))

    def batch_size(self, size):
        """Segments per `observe` / `decide` call; a small size exercises batch boundaries."""
        if int(size) < 1:
            raise ValueError("a batch holds at least one segment")
        return self._with(batch_size=int(size))

    def clone(self):
        return self

    @property
    def now_ms(self):
        return self._now_ms

    def totals(self):
        """The `DatasetTotals` the plugin will get, counted from the segments."""
        t = [TierTotals(), TierTotals(), TierTotals()]
        for s in self._segments:
            t[s._tier].segments += 1
            t[s._tier].bytes += s._bytes
        return DatasetTotals(*t)

    def context(self):
        """The contract's `pass-context` record for this pass."""
        t = self.totals()
        tt = lambda x: _native.TierTotals(x.segments, x.bytes)  # noqa: E731
        return _native.PassContext(
            pass_id=self._pass_id,
            dataset=self._dataset,
            now_ms=self._now_ms,
            dry_run=self._dry_run,
            params=[_native.Param(k, v) for k, v in sorted(self._params)],
            totals=_native.DatasetTotals(tt(t.hot), tt(t.compressed), tt(t.archived)),
        )

    def run(self, plugin):
        """Runs `plugin` (a `Plugin` subclass, or the class `export` made of one) as the host would and returns the
        `Outcome`; raises `Failure` when the pass fails."""
        return self._run(export(plugin))

    def _run(self, policy):
        """Runs an exported `Policy` class as it is."""
        with _native.capturing() as capture:
            try:
                decisions, observed_first = self._drive(policy, capture)
                failure = None
            except _CallFailed as f:
                failure = (f.call, f.message)
        logs = [LogLine(LogLevel(level.value), message) for level, message in capture.lines]
        if failure is not None:
            raise Failure(failure[0], failure[1], logs, capture.dropped)
        return Outcome(decisions, observed_first, logs, capture.dropped)

    def fail(self, plugin):
        """Runs `plugin` and returns the `Failure`; raises `AssertionError` when the pass succeeds."""
        try:
            out = self.run(plugin)
        except Failure as f:
            return f
        raise AssertionError("the pass succeeded: %r" % (out.plan(),))

    def oldest_first(self):
        seen = set()
        for s in self._segments:
            if s._name in seen:
                raise ValueError("segment name %s appears twice in the pass" % _quote(s._name))
            seen.add(s._name)
        out = []
        for input, s in enumerate(self._segments):
            kind, v = s._end
            end_ms = v if kind == "at" else self._now_ms - v
            kind, v = s._start
            start_ms = end_ms if kind == "end" else (v if kind == "at" else end_ms - v)
            out.append(_Resolved(input, s._name, s._tier, start_ms, end_ms, s._bytes, s._rows, sorted(s._labels)))
        out.sort(key=lambda r: (r.end_ms, r.name))
        return out

    def _drive(self, policy, capture):
        info = policy().info()
        _check_lowering("info", info, _native.PluginInfo)
        message = _check_info(info)
        if message is not None:
            raise _CallFailed("info", message)
        segments = self.oldest_first()
        batches, symbols = _build_batches(segments, self._batch_size)
        options = _call("begin", lambda: policy().begin(self.context()))
        _check_lowering("begin", options, _native.PassOptions)
        feed = _SymbolFeed(symbols)
        number = 0
        if options.observe_first:
            for lo, hi, batch, max_symbol in batches:
                call = "observe (batch %d)" % number
                number += 1
                record = feed.attach(batch, max_symbol)
                capture.names = _names(segments[lo:hi])
                try:
                    result = _call(call, lambda: policy().observe(record))
                finally:
                    capture.names = None
                if result is not None:
                    raise AssertionError("%s returned %r: observe returns None (would trap in a component)" % (call, result))
        decided = [None] * len(segments)
        for lo, hi, batch, max_symbol in batches:
            call = "decide (batch %d)" % number
            number += 1
            record = feed.attach(batch, max_symbol)
            capture.names = _names(segments[lo:hi])
            try:
                verdicts = _call(call, lambda: policy().decide(record))
            finally:
                capture.names = None
            _check_lowering(call, verdicts, _native.Verdicts)
            checked = _check_verdicts(verdicts, segments[lo:hi])
            if isinstance(checked, str):
                raise _CallFailed(call, checked)
            for k, (s, (action, reason)) in enumerate(zip(segments[lo:hi], checked)):
                decided[s.input] = Decided(s.name, s.tier, action, reason, lo + k)
        return decided, bool(options.observe_first)


def _call(call, thunk):
    """Calls one export; an `Err` becomes the call's failure, with the message cut as the host cuts it."""
    try:
        return thunk()
    except _native.Err as e:
        if not isinstance(e.value, str):
            raise AssertionError("%s raised Err(%r): the error must be a string (would trap)" % (call, e.value))
        raise _CallFailed(call, _native.truncated(e.value, _native.MAX_LOG_LINE_BYTES)) from None


def _check_lowering(call, value, record_type):
    """What componentize-py needs to lower the export's result (a mismatch traps in the component)."""
    if not isinstance(value, record_type):
        raise AssertionError("%s returned %r, not a %s (would trap)" % (call, value, record_type.__name__))
    if record_type is _native.Verdicts:
        if type(value.actions) is not bytes:
            raise AssertionError("%s: verdicts.actions is %s, not bytes (would trap)" % (call, type(value.actions).__name__))
        if not all(type(r) is int and 0 <= r < 1 << 32 for r in value.reasons):
            raise AssertionError("%s: verdicts.reasons must be u32 ints (would trap)" % call)
        if not all(type(t) is str for t in value.reason_texts):
            raise AssertionError("%s: verdicts.reason_texts must be strings (would trap)" % call)
    elif record_type is _native.PassOptions:
        if type(value.observe_first) is not bool:
            raise AssertionError("%s: observe_first is not a bool (would trap)" % call)
    elif record_type is _native.PluginInfo:
        if not all(type(getattr(value, f)) is str for f in ("name", "version", "description")):
            raise AssertionError("info: plugin-info fields must be strings (would trap)")


def _check_info(info):
    for what, v in (("name", info.name), ("version", info.version)):
        if not v or len(v.encode("utf-8")) > MAX_INFO_BYTES or any(_is_control(c) for c in v):
            return "%s must be 1 to %d printable characters, got %s" % (what, MAX_INFO_BYTES, _quote(v))
    return None


def _is_control(c):
    o = ord(c)
    return o < 0x20 or 0x7F <= o < 0xA0


class _SymbolFeed:
    """Each symbol goes out once per pass, with the first batch that needs it, observed or decided."""

    def __init__(self, symbols):
        self.symbols = symbols
        self.sent = 0

    def attach(self, batch, max_symbol):
        record = _native.SegmentBatch(
            first_index=batch.first_index,
            symbols=[],
            start_ms=list(batch.start_ms),
            end_ms=list(batch.end_ms),
            rows=list(batch.rows),
            bytes=list(batch.bytes),
            tiers=bytes(batch.tiers),
            labels=[_native.LabelColumn(c.key, list(c.values)) for c in batch.labels],
        )
        if max_symbol > self.sent:
            record.symbols = self.symbols[self.sent : max_symbol]
            self.sent = max_symbol
        return record


def _build_batches(segments, size):
    """Cuts the pass into batches, column by column, giving every label key and value a symbol id in the order the
    pass first uses them. Returns ([(lo, hi, batch, max_symbol)], symbols)."""
    symbols = []
    ids = {}

    def intern(text):
        i = ids.get(text)
        if i is None:
            symbols.append(text)
            i = ids[text] = len(symbols)
        return i

    labels = [sorted((intern(k), intern(v)) for k, v in s.labels) for s in segments]
    batches = []
    for lo in range(0, len(segments), size):
        hi = min(lo + size, len(segments))
        part = segments[lo:hi]
        columns = []
        by_key = {}
        max_symbol = 0
        for i, seg_labels in enumerate(labels[lo:hi]):
            for key, value in seg_labels:
                max_symbol = max(max_symbol, key, value)
                col = by_key.get(key)
                if col is None:
                    col = by_key[key] = _native.LabelColumn(key, [0] * len(part))
                    columns.append(col)
                col.values[i] = value
        batch = _native.SegmentBatch(
            first_index=lo,
            symbols=[],
            start_ms=[s.start_ms for s in part],
            end_ms=[s.end_ms for s in part],
            rows=[-1 if s.rows is None else min(s.rows, (1 << 63) - 1) for s in part],
            bytes=[s.bytes for s in part],
            tiers=bytes(int(s.tier) for s in part),
            labels=columns,
        )
        batches.append((lo, hi, batch, max_symbol))
    return batches, symbols


def _names(part):
    """A batch's names as the host sends them: concatenated, with each name's end offset in UTF-8 bytes."""
    ends = []
    total = 0
    for s in part:
        total += len(s.name.encode("utf-8"))
        ends.append(total)
    return _native.SegmentNames("".join(s.name for s in part), ends)


def _check_verdicts(v, part):
    """The host's check of one batch's verdicts, with its messages; returns [(Action, reason)] or an error text."""
    n = len(part)
    if len(v.actions) != n:
        return "returned %d actions for a batch of %d segments (one per segment expected)" % (len(v.actions), n)
    if v.reasons and len(v.reasons) != n:
        return "returned %d reasons for a batch of %d segments (none, or one per segment expected)" % (len(v.reasons), n)
    if len(v.reason_texts) > n:
        return "returned %d reason texts for a batch of %d segments (at most one per segment)" % (len(v.reason_texts), n)
    out = []
    for i, (s, code) in enumerate(zip(part, v.actions)):
        if code > 3:
            return (
                "returned action code %d for segment %s, which is not an action (0 keep, 1 compress, 2 archive, "
                "3 drop)" % (code, _quote(s.name))
            )
        action = ACTIONS[code]
        if not action.allowed_from(s.tier):
            return (
                "decided %s for %s segment %s, which the contract does not allow (compress only from hot, archive "
                "only from hot or compressed)" % (action, s.tier, _quote(s.name))
            )
        r = v.reasons[i] if v.reasons else 0
        reason = None
        if r:
            if r > len(v.reason_texts):
                return "reason %d of segment %s points past the %d reason texts" % (r, _quote(s.name), len(v.reason_texts))
            reason = _native.truncated(v.reason_texts[r - 1], MAX_REASON_BYTES)
        out.append((action, reason))
    return out
