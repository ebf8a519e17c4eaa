"""The export glue as componentize-py calls it: one `Policy` class per plugin, a new instance per call, the contract's
records in, `Verdicts` or `Err(message)` out."""

import pytest

import retention_sdk
from retention_sdk import Decision, Info, Plugin, Tier, _native
from retention_sdk._native import Err, LabelColumn, Param, PassContext, SegmentBatch
from retention_sdk.testing import Pass, seg

from plugins import CompressAll, DropDebug, Failing

DAY = 86_400_000


def context(params=(), segments=5):
    t = _native.TierTotals(segments, 0)
    z = _native.TierTotals(0, 0)
    return PassContext("p", "d", 10 * DAY, True, [Param(k, v) for k, v in params], _native.DatasetTotals(t, z, z))


def batch(first, levels, tiers=None, symbols=None):
    """`levels` are symbol ids of the `level` label (1 = "level", 2 = "debug", 3 = "info", sent with batch 0)."""
    n = len(levels)
    if symbols is None:
        symbols = ["level", "debug", "info"] if first == 0 else []
    return SegmentBatch(
        first_index=first,
        symbols=list(symbols),
        start_ms=[DAY] * n,
        end_ms=[DAY] * n,
        rows=[-1] * n,
        bytes=[100] * n,
        tiers=bytes(tiers or [0] * n),
        labels=[LabelColumn(1, list(levels))],
    )


class ByLevel(Plugin):
    INFO = Info("by-level", "1", "test")

    def decide(self, seg):
        if seg.label_is("level", "debug"):
            return Decision.drop("debug")
        if seg.label("level") == "info":
            return Decision.archive("info %d" % (seg.index % 2))
        return Decision.keep()


def test_export_makes_a_class_named_policy_whose_state_outlives_each_instance():
    Policy = retention_sdk.export(ByLevel)
    assert Policy.__name__ == "Policy" and Policy.plugin_class is ByLevel
    assert Policy().begin(context()).observe_first is False
    # componentize-py makes a new instance for every call: the pass must still be there.
    v = Policy().decide(batch(0, [2, 3, 2, 0, 3]))
    assert v.actions == bytes([3, 2, 3, 0, 2])
    # Exporting again (as a test run does) starts with no pass.
    with pytest.raises(Err) as e:
        retention_sdk.export(Policy)().decide(batch(0, [2]))
    assert e.value.value == "decide was called before begin"


def test_verdicts_are_columns_with_reasons_deduplicated_and_actions_as_bytes():
    Policy = retention_sdk.export(ByLevel)
    Policy().begin(context(segments=7))
    v = Policy().decide(batch(0, [2, 3, 2, 0, 3]))
    assert type(v.actions) is bytes
    assert v.reasons == [1, 2, 1, 0, 3]
    assert v.reason_texts == ["debug", "info 1", "info 0"]
    # Texts are per batch: the next batch numbers its own.
    v = Policy().decide(batch(5, [3, 0]))
    assert (v.actions, v.reasons, v.reason_texts) == (bytes([2, 0]), [1, 0], ["info 1"])


def test_a_batch_without_any_reason_sends_no_reasons_at_all():
    Policy = retention_sdk.export(ByLevel)
    Policy().begin(context(segments=2))
    v = Policy().decide(batch(0, [0, 0]))
    assert (v.actions, v.reasons, v.reason_texts) == (bytes(2), [], [])


def test_info_describes_the_plugin_and_never_raises():
    assert retention_sdk.export(DropDebug)().info() == _native.PluginInfo(
        "drop-debug", "0.1.0", "Drops old debug logs."
    )

    class Attributes(Plugin):
        name, version, description = "attrs", "2.0", "From class attributes."

        def decide(self, seg):
            return Decision.keep()

    assert retention_sdk.export(Attributes)().info() == _native.PluginInfo("attrs", "2.0", "From class attributes.")

    class Broken(Plugin):
        INFO = ("x", "1")  # one field short

        def decide(self, seg):
            return Decision.keep()

    info = retention_sdk.export(Broken)().info()
    assert info.name == "" and info.description.startswith("info failed: TypeError")


def test_calls_out_of_the_contracts_order_fail_with_a_message():
    Policy = retention_sdk.export(ByLevel)

    def err(call):
        with pytest.raises(Err) as e:
            call()
        return e.value.value

    assert err(lambda: Policy().decide(batch(0, [3]))) == "decide was called before begin"
    assert err(lambda: Policy().observe(batch(0, [3]))) == "observe was called before begin"
    Policy().begin(context(segments=1))
    assert "begin was called twice" in err(lambda: Policy().begin(context()))
    assert "did not ask for observe-first" in err(lambda: Policy().observe(batch(0, [3])))
    assert "starting at segment 7 but expected segment 0" in err(lambda: Policy().decide(batch(7, [3])))


def test_malformed_batches_fail_instead_of_raising_out_of_the_export():
    def decide(b):
        Policy = retention_sdk.export(ByLevel)
        Policy().begin(context())
        with pytest.raises(Err) as e:
            Policy().decide(b)
        return e.value.value

    b = batch(0, [3, 3])
    b.bytes.pop()
    assert decide(b) == "malformed batch at index 0: `bytes` has 1 entries but `end-ms` has 2"
    assert decide(batch(0, [3, 99])) == (
        "malformed batch at index 0: a label refers to symbol 99, not in the symbol table (3 symbols)"
    )
    b = batch(0, [3])
    b.labels.append(LabelColumn(9, [1]))
    assert decide(b) == "malformed batch at index 0: label key symbol 9 is not in the symbol table (3 symbols)"
    assert decide(batch(0, [3, 3], tiers=[0, 5])) == "malformed batch at index 0: tier code 5 of segment 1 is not a tier"


def test_an_action_the_tier_table_forbids_fails_the_decide_call_naming_the_segment():
    p = Pass("2026-03-01").segment(seg("hot").age_days(2)).segment(seg("squeezed").age_days(1).tier(Tier.COMPRESSED))
    err = p.fail(CompressAll)
    assert err.call == "decide (batch 0)"
    assert err.message == (
        'plugin decided `compress` for segment 1 (squeezed) in tier `compressed`, reason "squeeze", which the '
        "contract forbids (compress only from hot, archive only from hot or compressed)"
    )
    assert Pass("2026-03-01").segment(seg("hot")).run(CompressAll).action("hot") == retention_sdk.Action.COMPRESS


def test_an_uncaught_exception_in_decide_becomes_the_error_text_with_type_segment_and_traceback():
    err = Pass("2026-03-01").segments(seg(n).age_days(i) for i, n in enumerate("abcde")).param("raise_at", 3).fail(Failing)
    assert err.call == "decide (batch 0)"
    assert err.message.startswith("ZeroDivisionError: integer division or modulo by zero (while deciding segment 3;")
    assert "traceback, most recent call last: plugins.py:" in err.message
    assert err.message.endswith(" decide > plugins.py:%d helper_that_divides)" % (_line_of("seg.bytes // 0")))
    # The glue's own frames are left out.
    assert "runtime.py" not in err.message


def test_an_uncaught_exception_in_begin_or_observe_becomes_the_error_text():
    err = Pass("2026-03-01").param("boom", True).fail(Failing)
    assert err.call == "begin"
    assert err.message.startswith("KeyError: 'missing' (in begin; traceback, most recent call last: plugins.py:")
    assert err.logs[0].message == "about to check"
    p = Pass("2026-03-01").segments(seg(n).age_days(i) for i, n in enumerate("abc")).param("observe", True)
    err = p.param("raise_at", 1).batch_size(2).fail(Failing)
    assert err.call == "observe (batch 0)"
    assert err.message.startswith("ZeroDivisionError: integer division or modulo by zero (while observing segment 1;")


def test_a_plugin_error_is_the_error_text_exactly_and_names_fetched_before_appear_in_other_errors():
    p = Pass("2026-03-01").segments(seg(n).age_days(10 - i) for i, n in enumerate("abcd"))
    err = p.param("fail_at", 1).batch_size(2).fail(Failing)
    assert (err.call, err.message) == ("decide (batch 0)", "cannot decide b")

    class NameThenFail(Plugin):
        INFO = Info("n", "1", "t")

        def decide(self, seg):
            if seg.name == "c":
                raise RuntimeError("no")
            return Decision.keep()

    err = p.fail(NameThenFail)
    assert err.message.startswith('RuntimeError: no (while deciding segment 2 "c"; traceback')


def test_decide_must_return_a_decision():
    class Sloppy(Plugin):
        INFO = Info("s", "1", "t")

        def decide(self, seg):
            return "drop"

    err = Pass("2026-03-01").segment(seg("a")).fail(Sloppy)
    assert err.message.startswith("decide returned 'drop' for segment 0, not a Decision")


def test_begin_may_be_a_classmethod_and_must_return_the_instance():
    class ViaBegin(Plugin):
        INFO = Info("v", "1", "t")

        @classmethod
        def begin(cls, ctx):
            self = cls.__new__(cls)
            self.days = ctx.param_int("days")
            return self if self.days else None

        def decide(self, seg):
            return Decision.keep("days %d" % self.days)

    assert Pass("2026-03-01").param("days", 3).segment(seg("a")).run(ViaBegin).reason("a") == "days 3"
    assert Pass("2026-03-01").param("days", 0).fail(ViaBegin).message == (
        "ViaBegin.begin returned None: return the plugin instance"
    )
    assert Pass("2026-03-01").fail(ViaBegin).message == "missing required parameter `days`"


def test_fail_pass_fails_the_call_after_the_segment_and_skips_the_rest():
    class Suspicious(Plugin):
        INFO = Info("s", "1", "t")

        def __init__(self, ctx):
            self.decided = []

        def decide(self, seg):
            self.decided.append(seg.index)
            if seg.bytes == 0:
                seg.fail_pass("segment %d has no bytes" % seg.index)
            return Decision.keep()

    err = Pass("2026-03-01").segment(seg("a").age_days(2).bytes(1)).segment(seg("b").age_days(1)).fail(Suspicious)
    assert (err.call, err.message) == ("decide (batch 0)", "segment 1 has no bytes")


def test_outside_a_component_the_sdk_uses_its_stand_in_bindings():
    assert retention_sdk.IN_COMPONENT is False
    assert retention_sdk._bindings.Err is _native.Err


def _line_of(text):
    import plugins

    for number, line in enumerate(open(plugins.__file__, encoding="utf-8"), 1):
        if text in line:
            return number
    raise AssertionError(text)
