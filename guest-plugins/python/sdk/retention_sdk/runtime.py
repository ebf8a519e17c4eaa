"""The glue between componentize-py's `policy` exports and a `Plugin`: keeps the pass's state between calls, checks
that the host calls in the contract's order, maintains the symbol table, builds the verdicts column by column and
turns every failure into the plugin's error text (`Err(string)`) instead of a trap.

componentize-py wants, in the app module, a class named `Policy` (the exported interface's name) whose methods
`info`, `begin`, `observe` and `decide` it calls; it makes a new instance of that class for every call, so the pass's
state lives with the class `export` makes, not in `self`. A fresh component instance serves every pass.
"""

from . import _bindings
from .context import Context
from .decision import Decision
from .errors import PluginError
from .plugin import Plugin, info_of
from .segment import Batch, Segment, SymbolTable
from .types import ACTIONS, ALLOWED, TIERS
from .units import _quote

_OBSERVING, _DECIDING = 0, 1
_THIS_FILE = __file__.replace("\\", "/").rsplit("/", 1)[-1]
_SDK_DIR = __file__.replace("\\", "/").rsplit("/", 1)[0]


class _Failed(Exception):
    """A call's failure, with the message that becomes the plugin's error text."""

    def __init__(self, message):
        Exception.__init__(self, message)
        self.message = message


class _Pass:
    """The state of one pass."""

    __slots__ = ("plugin", "now_ms", "total", "observe_first", "phase", "next_index", "symbols")

    def __init__(self, plugin, now_ms, total, observe_first):
        self.plugin = plugin
        self.now_ms = now_ms
        self.total = total
        self.observe_first = observe_first
        self.phase = _OBSERVING if observe_first else _DECIDING
        self.next_index = 0
        self.symbols = SymbolTable()

    def open(self, record, call):
        """Takes the batch's new symbols into the pass's table, checks that the batch comes next in the pass and
        views its columns."""
        self.symbols.append(record.symbols)
        first = record.first_index
        if first != self.next_index:
            raise _Failed(
                "%s received a batch starting at segment %d but expected segment %d (batches must arrive in order)"
                % (call, first, self.next_index)
            )
        self.next_index += len(record.end_ms)
        return Batch(record, self.symbols, self.now_ms, self.total)


class Slot:
    """Where the current pass lives (one per exported class)."""

    __slots__ = ("current",)

    def __init__(self):
        self.current = None


def run_info(cls):
    """`info`: never raises (a broken description becomes an empty name, which the host refuses with a message)."""
    try:
        i = info_of(cls)
        return _bindings.types.PluginInfo(_text(i.name), _text(i.version), _text(i.description))
    except BaseException as e:  # noqa: BLE001 - info must not trap
        return _bindings.types.PluginInfo("", "", "info failed: " + describe(e, "info"))


def _text(value):
    return "" if value is None else str(value)


def run_begin(cls, slot, record):
    if slot.current is not None:
        raise _Failed("begin was called twice on one instance (the host must use a fresh instance per pass)")
    ctx = Context(record)
    try:
        plugin = cls.begin(ctx)
        if plugin is None:
            raise PluginError("%s.begin returned None: return the plugin instance" % cls.__name__)
        of = getattr(plugin, "observe_first", False)
        observe_first = bool(of() if callable(of) else of)
    except BaseException as e:  # noqa: BLE001
        raise _Failed(describe(e, "begin")) from None
    slot.current = _Pass(plugin, ctx.now_ms, ctx.totals.segments, observe_first)
    return observe_first


def run_observe(slot, record):
    p = slot.current
    if p is None:
        raise _Failed("observe was called before begin")
    if not p.observe_first:
        raise _Failed("observe was called although begin did not ask for observe-first")
    if p.phase == _DECIDING:
        raise _Failed("observe was called after decide (all observe calls must come first)")
    b = _open(p, record, "observe")
    observe = p.plugin.observe
    i = 0
    try:
        for i in range(b.n):
            observe(Segment(b, i))
            if b.failure is not None:
                break
    except BaseException as e:  # noqa: BLE001
        raise _Failed(b.failure or describe(e, "observe", b, i)) from None
    if b.failure is not None:
        raise _Failed(b.failure)


def run_decide(slot, record):
    """Asks the plugin about every segment of one batch; returns (actions, reasons, reason_texts)."""
    p = slot.current
    if p is None:
        raise _Failed("decide was called before begin")
    if p.phase == _OBSERVING:
        # The first decide ends the observe phase; indices start again at 0.
        p.phase = _DECIDING
        p.next_index = 0
    b = _open(p, record, "decide")
    n = b.n
    actions = bytearray(n)
    reasons = [0] * n
    texts = []
    ids = {}
    tiers = b.tiers
    decide = p.plugin.decide
    i = 0
    try:
        for i in range(n):
            d = decide(Segment(b, i))
            if type(d) is not Decision and not isinstance(d, Decision):
                raise PluginError(
                    "decide returned %s for segment %d, not a Decision (return Decision.keep(), .compress(reason), "
                    ".archive(reason) or .drop(reason))" % (_short_repr(d), b.first_index + i)
                )
            code = d._code
            tier = tiers[i]
            if not ALLOWED[tier][code]:
                raise PluginError(_invalid_action(b, i, tier, code, d._reason))
            reason = d._reason
            if reason is not None:
                rid = ids.get(reason)
                if rid is None:
                    texts.append(reason)
                    rid = ids[reason] = len(texts)
                reasons[i] = rid
            actions[i] = code
            if b.failure is not None:
                break
    except BaseException as e:  # noqa: BLE001
        raise _Failed(b.failure or describe(e, "decide", b, i)) from None
    if b.failure is not None:
        raise _Failed(b.failure)
    # componentize-py lowers `list<u8>` from `bytes` only (a bytearray fails the call).
    return bytes(actions), (reasons if texts else []), texts


def _open(p, record, call):
    try:
        return p.open(record, call)
    except PluginError as e:
        raise _Failed(e.message) from None


def _invalid_action(b, i, tier, code, reason):
    try:
        name = b.names()[i]
    except BaseException:  # noqa: BLE001 - the name only adorns the message
        name = None
    return "plugin decided `%s` for segment %d%s in tier `%s`%s, which the contract forbids (compress only from hot, " \
        "archive only from hot or compressed)" % (
            ACTIONS[code],
            b.first_index + i,
            " (%s)" % name if name is not None else "",
            TIERS[tier],
            ", reason %s" % _quote(reason) if reason is not None else "",
        )


def _short_repr(value):
    try:
        text = repr(value)
    except BaseException:  # noqa: BLE001
        text = "<%s>" % type(value).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def describe(exc, call, batch=None, i=None):
    """The plugin's error text for an exception raised in `call`: a `PluginError`'s message as it is; otherwise the
    exception's type and message, where in the pass, and the last frames of its traceback."""
    if isinstance(exc, PluginError):
        return exc.message
    if isinstance(exc, _Failed):
        return exc.message
    if isinstance(exc, _bindings.Err):
        return str(exc.value)
    try:
        text = str(exc)
    except BaseException:  # noqa: BLE001
        text = ""
    head = type(exc).__name__ + (": " + text if text else "")
    where = "in " + call
    if batch is not None and i is not None:
        verb = "deciding" if call == "decide" else "observing"
        name = batch.fetched_name(i)
        where = "while %s segment %d%s" % (verb, batch.first_index + i, " " + _quote(name) if name is not None else "")
    frames = _frames(exc.__traceback__)
    if frames:
        where += "; traceback, most recent call last: " + " > ".join(frames)
    return "%s (%s)" % (head, where)


def _frames(tb, keep=4):
    """`file:line function` of the last `keep` frames of a traceback, without the SDK's glue (and without the
    `traceback` module, which a component cannot import at run time)."""
    out = []
    while tb is not None:
        code = tb.tb_frame.f_code
        path = code.co_filename.replace("\\", "/")
        directory, _, base = path.rpartition("/")
        if not (directory == _SDK_DIR and base in (_THIS_FILE, "plugin.py")):
            out.append("%s:%d %s" % (base, tb.tb_lineno, code.co_name))
        tb = tb.tb_next
    return out[-keep:]


def export(plugin_cls):
    """The class componentize-py wants for the `policy` export, made from a `Plugin` subclass. In the app module:

        Policy = retention_sdk.export(MyPlugin)

    (The name `Policy` is what componentize-py looks for.) The class keeps the pass's state between calls and turns
    every failure, including uncaught exceptions, into the call's `Err(message)`.
    """
    if isinstance(plugin_cls, type) and getattr(plugin_cls, "plugin_class", None) is not None:
        plugin_cls = plugin_cls.plugin_class
    if not isinstance(plugin_cls, type) or not callable(getattr(plugin_cls, "decide", None)):
        raise TypeError("export() takes a Plugin subclass (a class with begin and decide), got %r" % (plugin_cls,))
    if not callable(getattr(plugin_cls, "begin", None)):
        raise TypeError("%s has no begin(ctx): subclass retention_sdk.Plugin" % plugin_cls.__name__)
    Err = _bindings.Err
    types = _bindings.types
    slot = Slot()

    class Policy(_bindings.PolicyBase):
        def info(self):
            return run_info(plugin_cls)

        def begin(self, context):
            try:
                observe_first = run_begin(plugin_cls, slot, context)
            except _Failed as f:
                message = f.message
            except BaseException as e:  # noqa: BLE001 - never trap
                message = describe(e, "begin")
            else:
                return types.PassOptions(observe_first)
            raise Err(message)

        def observe(self, batch):
            try:
                run_observe(slot, batch)
                return None
            except _Failed as f:
                message = f.message
            except BaseException as e:  # noqa: BLE001 - never trap
                message = describe(e, "observe")
            raise Err(message)

        def decide(self, batch):
            try:
                actions, reasons, texts = run_decide(slot, batch)
            except _Failed as f:
                message = f.message
            except BaseException as e:  # noqa: BLE001 - never trap
                message = describe(e, "decide")
            else:
                return types.Verdicts(actions, reasons, texts)
            raise Err(message)

    Policy.plugin_class = plugin_cls
    Policy.__qualname__ = "Policy"
    Policy.__doc__ = "The `policy` export of %s (made by retention_sdk.export)." % plugin_cls.__name__
    return Policy


__all__ = ["export", "Plugin"]
