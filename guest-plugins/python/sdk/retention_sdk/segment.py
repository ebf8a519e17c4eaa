"""The per-segment view over the contract's column layout: `Segment` reads element `i` of the batch's columns, labels
through the pass's symbol table, and names from `host.batch-names` (fetched once per batch, on first use)."""

from . import _bindings
from .errors import PluginError
from .types import TIERS
from .units import DAY_MS


class SymbolTable:
    """The pass's symbols: `texts[id]` (id 0, "absent", is `None`), filled from every batch's `symbols` in order,
    across `observe` and `decide`; and the reverse index for `label_is`, extended on demand."""

    __slots__ = ("texts", "_ids", "_indexed")

    def __init__(self):
        self.texts = [None]
        self._ids = {}
        self._indexed = 1

    def append(self, symbols):
        if symbols:
            self.texts.extend(symbols)

    def __len__(self):
        """Number of symbols (the largest valid id)."""
        return len(self.texts) - 1

    def id_of(self, text):
        """The id of `text`, 0 when it is no symbol (yet)."""
        texts = self.texts
        if self._indexed < len(texts):
            ids = self._ids
            for i in range(self._indexed, len(texts)):
                ids.setdefault(texts[i], i)
            self._indexed = len(texts)
        return self._ids.get(text, 0)


class Batch:
    """One batch, its columns checked to be consistent; `Segment`s index into it."""

    __slots__ = (
        "first_index",
        "n",
        "start_ms",
        "end_ms",
        "rows",
        "bytes",
        "tiers",
        "columns",
        "symbols",
        "table",
        "now_ms",
        "total",
        "_names",
        "failure",
    )

    def __init__(self, record, table, now_ms, total):
        first = record.first_index
        n = len(record.end_ms)
        for field, column in (
            ("start-ms", record.start_ms),
            ("rows", record.rows),
            ("bytes", record.bytes),
            ("tiers", record.tiers),
        ):
            if len(column) != n:
                raise PluginError(
                    "malformed batch at index %d: `%s` has %d entries but `end-ms` has %d" % (first, field, len(column), n)
                )
        tiers = record.tiers
        if n and max(tiers) > 2:
            i = next(i for i, t in enumerate(tiers) if t > 2)
            raise PluginError(
                "malformed batch at index %d: tier code %d of segment %d is not a tier" % (first, tiers[i], first + i)
            )
        texts = table.texts
        known = len(texts) - 1
        columns = {}
        for col in record.labels:
            if col.key == 0 or col.key > known:
                raise PluginError(
                    "malformed batch at index %d: label key symbol %d is not in the symbol table (%d symbols)"
                    % (first, col.key, known)
                )
            if len(col.values) != n:
                raise PluginError(
                    "malformed batch at index %d: label column `%s` has %d entries for %d segments"
                    % (first, texts[col.key], len(col.values), n)
                )
            columns[texts[col.key]] = col.values
        self.first_index = first
        self.n = n
        self.start_ms = record.start_ms
        self.end_ms = record.end_ms
        self.rows = record.rows
        self.bytes = record.bytes
        self.tiers = tiers
        self.columns = columns
        self.symbols = texts
        self.table = table
        self.now_ms = now_ms
        self.total = total
        self._names = None
        self.failure = None

    def fail(self, message):
        """Records a failure of the current call (the first one wins) and raises it."""
        if self.failure is None:
            self.failure = message
        raise PluginError(message)

    def names(self):
        """The batch's names, fetched from the host on first use and decoded from its UTF-8 byte offsets."""
        names = self._names
        if names is None:
            names = self._names = self._fetch_names()
        return names

    def fetched_name(self, i):
        """The name of segment `i` if the names were already fetched (for error messages), else `None`."""
        if self._names is None or i >= len(self._names):
            return None
        return self._names[i]

    def _fetch_names(self):
        got = _bindings.host.batch_names()
        text, ends = got.text, got.ends
        if len(ends) != self.n:
            self.fail(
                "host returned %d segment names for a batch of %d segments (index %d)" % (len(ends), self.n, self.first_index)
            )
        # `ends` are offsets in bytes of UTF-8. For ASCII text bytes and characters coincide, so the text is sliced
        # as it is; otherwise it is encoded once and each name decoded from its bytes.
        ascii_text = text.isascii()
        raw = text if ascii_text else text.encode("utf-8")
        size = len(raw)
        names = []
        start = 0
        for i, end in enumerate(ends):
            if not start <= end <= size:
                self.fail(
                    "host returned a malformed name for segment %d (bytes %d..%d of %d)"
                    % (self.first_index + i, start, end, size)
                )
            if ascii_text:
                names.append(raw[start:end])
            else:
                try:
                    names.append(raw[start:end].decode("utf-8"))
                except UnicodeDecodeError:
                    self.fail(
                        "host returned a malformed name for segment %d (bytes %d..%d of %d)"
                        % (self.first_index + i, start, end, size)
                    )
            start = end
        return names

    def unknown_symbol(self, value_id):
        self.fail(
            "malformed batch at index %d: a label refers to symbol %d, not in the symbol table (%d symbols)"
            % (self.first_index, value_id, len(self.symbols) - 1)
        )


class Segment:
    """One segment of the pass: a file, a time chunk of a table, an archived object. A view into the current batch,
    valid during the `observe` or `decide` call that received it (copy out what you want to keep)."""

    __slots__ = ("_b", "_i")

    def __init__(self, batch, i):
        self._b = batch
        self._i = i

    @property
    def index(self):
        """Position in the pass: 0 for the oldest, `ctx.totals.segments - 1` for the newest."""
        return self._b.first_index + self._i

    @property
    def from_newest(self):
        """How many segments of the pass are newer than this one: 0 for the newest."""
        return max(0, self._b.total - (self._b.first_index + self._i + 1))

    @property
    def start_ms(self):
        """Start of the time range, in milliseconds since the Unix epoch (UTC)."""
        return self._b.start_ms[self._i]

    @property
    def end_ms(self):
        """End of the time range, in milliseconds since the Unix epoch (UTC). Ages are measured from it."""
        return self._b.end_ms[self._i]

    @property
    def age_ms(self):
        """The pass's now minus the segment's end, in milliseconds (negative for a segment from the future)."""
        return self._b.now_ms - self._b.end_ms[self._i]

    def age_days(self):
        """Age in whole days, rounded down (`age_days() >= n` exactly when at least `n` days old); negative for a
        segment from the future."""
        return (self._b.now_ms - self._b.end_ms[self._i]) // DAY_MS

    @property
    def bytes(self):
        """Size in bytes as stored in the current tier (the compressed size for a compressed segment)."""
        return self._b.bytes[self._i]

    @property
    def rows(self):
        """Number of rows (records, lines), `None` when the store does not know."""
        r = self._b.rows[self._i]
        return r if r >= 0 else None

    @property
    def tier(self):
        """Where the segment's bytes live now: a `Tier`."""
        return TIERS[self._b.tiers[self._i]]

    def label(self, key):
        """The value of label `key`, `None` when the segment does not have it."""
        b = self._b
        col = b.columns.get(key)
        if col is None:
            return None
        sid = col[self._i]
        if sid == 0:
            return None
        try:
            return b.symbols[sid]
        except IndexError:
            b.unknown_symbol(sid)

    def label_is(self, key, value):
        """Whether label `key` has the value `value` (compares symbol ids, not text)."""
        sid = self.label_symbol(key)
        return sid is not None and sid == self._b.table.id_of(value)

    def label_symbol(self, key):
        """The value of label `key` as a pass-wide symbol id (an `int`, equal for equal values throughout the pass,
        cheap to store and hash), `None` when absent. `symbol_text(id)` gives the text back."""
        b = self._b
        col = b.columns.get(key)
        if col is None:
            return None
        sid = col[self._i]
        if sid == 0:
            return None
        if sid >= len(b.symbols):
            b.unknown_symbol(sid)
        return sid

    def symbol_text(self, symbol):
        """The text of a symbol id from `label_symbol` in this pass."""
        s = self._b.symbols
        return s[symbol] if 0 < symbol < len(s) else ""

    def labels(self):
        """All labels of the segment, as a list of `(key, value)` sorted by key."""
        b = self._b
        out = []
        for key, col in b.columns.items():
            sid = col[self._i]
            if sid:
                if sid >= len(b.symbols):
                    b.unknown_symbol(sid)
                out.append((key, b.symbols[sid]))
        out.sort()
        return out

    @property
    def name(self):
        """The segment's name (for a directory store: its path relative to the dataset root, `/`-separated, without a
        `.zst` suffix). The first use in a batch fetches the batch's names from the host in one call."""
        return self._b.names()[self._i]

    def fail_pass(self, message):
        """Fails the pass with `message` once the current call returns: the rest of the batch is skipped and nothing
        of the pass is applied."""
        if self._b.failure is None:
            self._b.failure = str(message)

    def __repr__(self):
        return "Segment(index=%d, end_ms=%d, bytes=%d, tier=%s)" % (self.index, self.end_ms, self.bytes, self.tier)
