"""Stand-ins for the bindings that componentize-py generates, for running outside a component.

Outside a component (plain CPython: unit tests, `retention_sdk.testing`) the generated modules are not there, and the
generated host functions would only raise `NotImplementedError` anyway. This module has the same record types, the
same `Err` exception and a stand-in `host` whose answers the testing module sets: the names of the batch being
decided, and a log that keeps lines within the host's bounds. Outside a testing run the stand-in answers like the host
outside `observe` and `decide` (no names) and writes log lines to stderr.
"""

import sys
from dataclasses import dataclass
from enum import Enum
from typing import Generic, List, TypeVar

E = TypeVar("E")


@dataclass(frozen=True)
class Err(Generic[E], Exception):
    """The failure case of a `result`, raised from an export (as `componentize_py_types.Err`)."""

    value: E


# --- retention:policy/types -----------------------------------------------------------------------------------


@dataclass
class PluginInfo:
    name: str
    version: str
    description: str


@dataclass
class TierTotals:
    segments: int
    bytes: int


@dataclass
class DatasetTotals:
    hot: TierTotals
    compressed: TierTotals
    archived: TierTotals


@dataclass
class Param:
    key: str
    value: str


@dataclass
class PassContext:
    pass_id: str
    dataset: str
    now_ms: int
    dry_run: bool
    params: List[Param]
    totals: DatasetTotals


@dataclass
class PassOptions:
    observe_first: bool


@dataclass
class LabelColumn:
    key: int
    values: List[int]


@dataclass
class SegmentBatch:
    first_index: int
    symbols: List[str]
    start_ms: List[int]
    end_ms: List[int]
    rows: List[int]
    bytes: List[int]
    tiers: bytes
    labels: List[LabelColumn]


@dataclass
class Verdicts:
    actions: bytes
    reasons: List[int]
    reason_texts: List[str]


class _TypesModule:
    """Looks like `wit_world.imports.types`."""

    PluginInfo = PluginInfo
    TierTotals = TierTotals
    DatasetTotals = DatasetTotals
    Param = Param
    PassContext = PassContext
    PassOptions = PassOptions
    LabelColumn = LabelColumn
    SegmentBatch = SegmentBatch
    Verdicts = Verdicts


types = _TypesModule()


# --- retention:policy/host ------------------------------------------------------------------------------------


class LogLevel(Enum):
    DEBUG = 0
    INFO = 1
    WARN = 2
    ERROR = 3


@dataclass
class SegmentNames:
    text: str
    ends: List[int]


#: Most log lines the host keeps per pass; later ones are counted, not kept.
MAX_LOG_LINES = 1000
#: Most bytes of log text the host keeps per pass.
MAX_LOG_BYTES = 256 << 10
#: Longest log line (and plugin error message) the host keeps; longer ones are cut.
MAX_LOG_LINE_BYTES = 2 << 10


def truncated(text, max_bytes):
    """`text` cut to at most `max_bytes` UTF-8 bytes on a character boundary, as the host cuts texts."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    return raw[:max_bytes].decode("utf-8", errors="ignore")


class Capture:
    """What the host would hold for the current pass: its log and the current batch's names."""

    def __init__(self):
        self.lines = []  # (LogLevel, str)
        self.bytes = 0
        self.dropped = 0
        self.names = None  # SegmentNames during an observe or decide call

    def push(self, level, message):
        if len(self.lines) >= MAX_LOG_LINES or self.bytes >= MAX_LOG_BYTES:
            self.dropped += 1
            return
        message = truncated(message, MAX_LOG_LINE_BYTES)
        self.bytes += len(message.encode("utf-8"))
        self.lines.append((level, message))


class _HostModule:
    """Looks like `wit_world.imports.host`, answering from the current `Capture` (see `capturing`)."""

    LogLevel = LogLevel
    SegmentNames = SegmentNames

    def __init__(self):
        self.capture = None

    def log(self, level, message):
        if self.capture is not None:
            self.capture.push(level, message)
        else:
            sys.stderr.write("plugin log (%s): %s\n" % (level.name.lower(), message))

    def batch_names(self):
        if self.capture is not None and self.capture.names is not None:
            return self.capture.names
        return SegmentNames("", [])


host = _HostModule()


class capturing:
    """`with capturing() as capture:` makes the stand-in host answer from a fresh `Capture` until the block ends."""

    def __enter__(self):
        if host.capture is not None:
            raise RuntimeError("a testing run started inside another one")
        host.capture = Capture()
        return host.capture

    def __exit__(self, *exc):
        host.capture = None
        return False
