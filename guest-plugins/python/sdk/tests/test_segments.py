"""The per-segment view: names decoded from UTF-8 byte offsets, labels through the pass's symbol table, the columns."""

import pytest

import retention_sdk
from retention_sdk import Action, Decision, Info, Plugin, Tier, _native
from retention_sdk._native import Err, LabelColumn, SegmentBatch, SegmentNames
from retention_sdk.testing import Pass, seg

from plugins import Echo, Observer

NAMES = ["a/é.log", "日本/ログ.log", "emoji-🦀.log", "plain.log", "ß", ""]


class Names(Plugin):
    INFO = Info("names", "1", "test")

    def decide(self, seg):
        return Decision.keep("[%s] %d" % (seg.name, len(seg.name)))


def test_names_with_non_ascii_characters_are_decoded_from_the_hosts_byte_offsets():
    for size in (1, 2, 4096):
        p = Pass("2026-03-01").batch_size(size)
        p = p.segments(seg(n).age_days(len(NAMES) - i) for i, n in enumerate(NAMES) if n)
        out = p.run(Names)
        for n in NAMES[:-1]:
            assert out.reason(n) == "[%s] %d" % (n, len(n)), "batch size %d" % size


def test_an_empty_name_and_offsets_that_cut_a_character_or_overrun_are_handled_or_refused():
    def decide_with(names):
        Policy = retention_sdk.export(Names)
        Policy().begin(Pass("2026-03-01").segments([seg("x"), seg("y")]).context())
        b = SegmentBatch(0, [], [0, 0], [0, 0], [-1, -1], [0, 0], bytes(2), [])
        _native.host.capture = _native.Capture()
        _native.host.capture.names = names
        try:
            return Policy().decide(b)
        finally:
            _native.host.capture = None

    v = decide_with(SegmentNames("é", [0, 2]))
    assert v.reason_texts == ["[] 0", "[é] 1"]
    with pytest.raises(Err) as e:
        decide_with(SegmentNames("é", [1, 2]))
    assert e.value.value == "host returned a malformed name for segment 0 (bytes 0..1 of 2)"
    with pytest.raises(Err) as e:
        decide_with(SegmentNames("ab", [1, 5]))
    assert e.value.value == "host returned a malformed name for segment 1 (bytes 1..5 of 2)"
    with pytest.raises(Err) as e:
        decide_with(SegmentNames("ab", [1]))
    assert e.value.value == "host returned 1 segment names for a batch of 2 segments (index 0)"


def test_outside_a_call_the_host_has_no_names_and_the_sdk_says_so():
    Policy = retention_sdk.export(Names)
    Policy().begin(Pass("2026-03-01").segment(seg("a")).context())
    with pytest.raises(Err) as e:
        Policy().decide(SegmentBatch(0, [], [0], [0], [-1], [0], bytes(1), []))
    assert e.value.value == "host returned 0 segment names for a batch of 1 segments (index 0)"


def test_every_column_label_and_name_reads_as_the_host_sent_it(five):
    whole = five.run(Echo)
    assert whole.reason("a") == (
        "a #0 (newest-4) 1771891200000..1771891200000 age 5d 10B rows 3 hot [level=debug zone=b] zone:b a:False"
    )
    assert whole.reason("b") == (
        "b #1 (newest-3) 1771974000000..1771977600000 age 4d 20B rows None hot [level=info] zone:None a:False"
    )
    assert whole.reason("d") == (
        "d #3 (newest-1) 1772150400000..1772150400000 age 2d 40B rows None archived [zone=a] zone:a a:True"
    )
    assert whole.names_with(Action.ARCHIVE) == ["a", "b", "c", "e"]


def test_decisions_names_labels_and_state_do_not_depend_on_the_batch_size(five):
    whole = five.run(Echo)
    for size in (1, 2, 3, 4):
        assert five.batch_size(size).run(Echo).decisions() == whole.decisions(), "batch size %d" % size


def test_observe_first_sees_every_segment_oldest_first_and_the_symbol_table_carries_over_to_decide(five):
    for size in (1, 2, 5, 4096):
        out = five.batch_size(size).run(Observer)
        assert out.observed_first()
        assert out.logs()[0].message == "observed a:debug b:info c:info d:None e:debug", "batch size %d" % size
        # Symbols were all sent during observe; decide still resolves the labels.
        assert [out.reason(n) for n in "abcde"] == [
            "decision %d after 5 observed, level %s" % (i, lvl)
            for i, lvl in enumerate(["debug", "info", "info", "None", "debug"], 1)
        ]


def test_symbols_sent_during_observe_are_not_sent_again_to_decide():
    Policy = retention_sdk.export(Observer)
    Policy().begin(Pass("2026-03-01").segment(seg("a")).context())
    cols = lambda: [LabelColumn(1, [2])]  # noqa: E731
    names = SegmentNames("a", [1])
    _native.host.capture = _native.Capture()
    _native.host.capture.names = names
    try:
        Policy().observe(SegmentBatch(0, ["level", "debug"], [0], [0], [-1], [0], bytes(1), cols()))
        v = Policy().decide(SegmentBatch(0, [], [0], [0], [-1], [0], bytes(1), cols()))
    finally:
        _native.host.capture = None
    assert v.reason_texts == ["decision 1 after 1 observed, level debug"]
    with pytest.raises(Err) as e:
        Policy().observe(SegmentBatch(1, [], [], [], [], [], b"", []))
    assert "observe was called after decide" in e.value.value


def test_label_is_compares_like_label_and_sees_symbols_added_in_later_batches():
    class Probe(Plugin):
        INFO = Info("p", "1", "t")

        def decide(self, seg):
            return Decision.keep(
                "%s %s %s" % (seg.label_is("level", "info"), seg.label_is("level", "debug"), seg.label_is("zone", "x"))
            )

    p = Pass("2026-03-01").batch_size(1)
    out = p.segment(seg("a").age_days(2).label("level", "debug")).segment(seg("b").age_days(1).label("level", "info")).run(Probe)
    # "info" is no symbol yet when "a" is decided (it comes with the second batch).
    assert (out.reason("a"), out.reason("b")) == ("False True False", "True False False")


def test_label_symbols_are_pass_wide_ids_that_give_their_text_back():
    class Groups(Plugin):
        INFO = Info("g", "1", "t")

        def __init__(self, ctx):
            self.first = {}

        def decide(self, seg):
            sym = seg.label_symbol("service")
            if sym is None:
                return Decision.keep("none")
            first = self.first.setdefault(sym, seg.index)
            return Decision.keep("%s first at %d" % (seg.symbol_text(sym), first))

    segs = [seg("s%d" % i).age_days(10 - i).label("service", "ab"[i % 2]) for i in range(4)] + [seg("x")]
    out = Pass("2026-03-01").batch_size(1).segments(segs).run(Groups)
    assert [out.reason(n) for n in ("s0", "s1", "s2", "s3", "x")] == [
        "a first at 0",
        "b first at 1",
        "a first at 0",
        "b first at 1",
        "none",
    ]


def test_ages_are_whole_days_rounded_down_and_negative_in_the_future():
    class Ages(Plugin):
        INFO = Info("a", "1", "t")

        def decide(self, seg):
            return Decision.keep("%d %d" % (seg.age_ms, seg.age_days()))

    out = (
        Pass("2026-03-01")
        .segment(seg("almost").age_ms(2 * 86_400_000 - 1))
        .segment(seg("future").age_ms(-1))
        .run(Ages)
    )
    assert (out.reason("almost"), out.reason("future")) == ("172799999 1", "-1 -1")


def test_tiers_and_actions_print_as_the_host_writes_them_and_the_tier_table_is_the_contracts():
    assert [str(t) for t in Tier] == ["hot", "compressed", "archived"]
    assert "%s/%s" % (Tier.COMPRESSED, Action.ARCHIVE) == "compressed/archive"
    assert "{:>5}".format(Action.DROP) == " drop"
    allowed = {(a, t) for a in Action for t in Tier if a.allowed_from(t)}
    assert allowed == {
        (Action.KEEP, Tier.HOT),
        (Action.KEEP, Tier.COMPRESSED),
        (Action.KEEP, Tier.ARCHIVED),
        (Action.DROP, Tier.HOT),
        (Action.DROP, Tier.COMPRESSED),
        (Action.DROP, Tier.ARCHIVED),
        (Action.COMPRESS, Tier.HOT),
        (Action.ARCHIVE, Tier.HOT),
        (Action.ARCHIVE, Tier.COMPRESSED),
    }
    assert Tier.parse("Archived") is Tier.ARCHIVED and not Tier.ARCHIVED.is_local


def test_decisions_are_immutable_values_and_an_empty_reason_is_none():
    d = Decision.drop("old")
    assert (d.action, d.reason) == (Action.DROP, "old")
    assert d.because("older") == Decision(Action.DROP, "older") == Decision("drop", "older")
    assert Decision.keep().reason is None and Decision.archive("").reason is None
    assert Decision.compress(7).reason == "7"
    with pytest.raises(AttributeError):
        d.reason = "x"
    with pytest.raises(ValueError):
        Decision(9)
