"""retention_sdk.testing plays the host's part: order, batches, symbols, bounds and checks as the host has them."""

import pytest

from retention_sdk import Action, Decision, Info, LogLevel, Plugin, PluginError, log
from retention_sdk import _native
from retention_sdk.testing import Failure, LogLine, Pass, parse_time, seg, _build_batches, _check_verdicts, _SymbolFeed

from plugins import DropDebug, Echo, Failing

NOW = "2026-03-01T00:00:00Z"


def test_a_pass_runs_the_plugin_and_answers_per_segment_in_the_order_they_were_added():
    out = (
        Pass(NOW)
        .param("days", 7)
        .segment(seg("api/info-2026-02-28.log").age_days(1).label("level", "info"))
        .segment(seg("api/debug-2026-02-20.log").age_days(9).label("level", "debug").bytes(100))
        .segment(seg("api/debug-2026-02-27.log").time("2026-02-27").label("level", "debug"))
        .run(DropDebug)
    )
    assert out.action("api/debug-2026-02-20.log") == Action.DROP
    assert out.reason("api/debug-2026-02-20.log") == "api/debug-2026-02-20.log is old debug"
    assert out.action("api/debug-2026-02-27.log") == Action.KEEP
    assert out.reason("api/info-2026-02-28.log") is None
    assert [(d.name, d.index) for d in out.decisions()] == [
        ("api/info-2026-02-28.log", 2),
        ("api/debug-2026-02-20.log", 0),
        ("api/debug-2026-02-27.log", 1),
    ]
    assert out.names_with(Action.DROP) == ["api/debug-2026-02-20.log"]
    assert not out.observed_first()
    assert out.logs() == [LogLine(LogLevel.INFO, "3 segments in test")]


def test_the_exported_class_of_an_app_module_runs_as_well_as_the_plugin_class():
    import retention_sdk

    Policy = retention_sdk.export(DropDebug)
    out = Pass(NOW).segment(seg("a").age_days(8).label("level", "debug")).run(Policy)
    assert out.action("a") == Action.DROP


def test_calls_are_numbered_across_batches_like_the_hosts_errors(five):
    err = five.param("fail_at", 3).batch_size(2).fail(Failing)
    assert (err.call, err.message) == ("decide (batch 1)", "cannot decide d")
    with pytest.raises(Failure) as e:
        five.param("fail_at", 3).run(Failing)
    assert str(e.value) == "decide (batch 0): cannot decide d"


def test_a_failing_begin_returns_its_error_and_the_lines_logged_before_it(five):
    err = five.param("refuse", "no way").fail(Failing)
    assert (err.call, err.message) == ("begin", "refused: no way")
    assert err.logs == [LogLine(LogLevel.WARN, "about to check")]


def test_the_context_has_the_now_dataset_dry_run_sorted_params_and_the_totals_per_tier(five):
    out = five.dataset("app-logs").pass_id("p-7").dry_run(False).param("z", True).param("a", "1").param("z", False).run(Echo)
    assert out.logs()[0].message == (
        "pass p-7 dataset app-logs now 1772323200000 dry false params [a=1 z=false] hot 3/80 compressed 1/30 "
        "archived 1/40"
    )
    assert five.totals().local_bytes == 110
    out = Pass(NOW).run(Echo)
    assert out.logs()[0].message == (
        "pass test dataset test now 1772323200000 dry true params [] hot 0/0 compressed 0/0 archived 0/0"
    )
    assert out.decisions() == []


def test_a_pass_is_immutable_so_a_base_pass_can_be_shared():
    base = Pass(NOW).param("days", 7)
    one = base.segment(seg("a"))
    assert base.totals().segments == 0 and one.totals().segments == 1


def test_segments_with_equal_end_times_come_in_name_order():
    out = (
        Pass(NOW)
        .segments(seg(n).time("2026-02-01T10:00:00Z") for n in ["b", "c", "a"])
        .segment(seg("z").time("2026-01-31"))
        .run(Echo)
    )
    assert [out.decision(n).index for n in "zabc"] == [0, 1, 2, 3]


def test_each_symbol_is_sent_once_with_the_first_batch_that_uses_it(five):
    segments = five.oldest_first()
    batches, symbols = _build_batches(segments, 2)
    assert symbols == ["level", "debug", "zone", "b", "info", "a"]
    feed = _SymbolFeed(symbols)
    assert [feed.attach(b, m).symbols for _, _, b, m in batches] == [
        ["level", "debug", "zone", "b", "info"],
        ["a"],
        [],
    ]
    assert all(feed.attach(b, m).symbols == [] for _, _, b, m in batches)


class Loud(Plugin):
    INFO = Info("loud", "1", "test")

    def __init__(self, ctx):
        if ctx.param_str("refuse", default=None) is not None:
            raise PluginError("x" * 5000)
        for i in range(1005):
            log.info("line %d", i)

    def decide(self, seg):
        return Decision.keep("€" * 300)


def test_reasons_log_lines_and_error_messages_are_cut_like_the_hosts():
    out = Pass(NOW).segment(seg("a")).run(Loud)
    # On a character boundary: 170 three-byte characters are 510 bytes, one more would be 513.
    assert out.reason("a") == "€" * 170
    assert len(out.logs()) == 1000 and out.logs()[999].message == "line 999" and out.logs_dropped() == 5
    assert len(Pass(NOW).param("refuse", "").fail(Loud).message) == 2048
    c = _native.Capture()
    for _ in range(200):
        c.push(_native.LogLevel.INFO, "x" * 3000)
    assert (len(c.lines), c.dropped, len(c.lines[0][1])) == (128, 72, 2048)


def test_two_segments_with_one_name_are_refused():
    with pytest.raises(ValueError, match='segment name "a" appears twice in the pass'):
        Pass(NOW).segment(seg("a")).segment(seg("a").age_days(1)).run(Echo)


def test_a_plugin_info_the_host_would_refuse_fails_the_pass():
    class Nameless(Plugin):
        INFO = Info("", "1", "test")

        def decide(self, seg):
            return Decision.keep()

    err = Pass(NOW).fail(Nameless)
    assert (err.call, err.message) == ("info", 'name must be 1 to 128 printable characters, got ""')


def test_verdicts_the_sdk_never_sends_are_refused_with_the_hosts_messages(five):
    part = five.oldest_first()[:2]

    def err(actions, reasons, texts):
        return _check_verdicts(_native.Verdicts(bytes(actions), reasons, texts), part)

    assert err([0], [], []) == "returned 1 actions for a batch of 2 segments (one per segment expected)"
    assert err([0, 0], [1], ["x"]) == "returned 1 reasons for a batch of 2 segments (none, or one per segment expected)"
    assert err([0, 0], [], ["x", "y", "z"]) == "returned 3 reason texts for a batch of 2 segments (at most one per segment)"
    assert err([0, 7], [], []) == (
        'returned action code 7 for segment "b", which is not an action (0 keep, 1 compress, 2 archive, 3 drop)'
    )
    assert err([0, 0], [0, 2], ["x"]) == 'reason 2 of segment "b" points past the 1 reason texts'
    assert err([3, 1], [1, 0], ["old"]) == [(Action.DROP, "old"), (Action.COMPRESS, None)]


def test_times_parse_as_rfc3339_with_fractions_and_offsets_or_as_dates():
    day = 1_772_323_200_000
    assert parse_time("2026-03-01") == day
    assert parse_time("2026-03-01T00:00:00Z") == day
    assert parse_time("2026-03-01t00:00:00z") == day
    assert parse_time("2026-03-01 00:00:00Z") == day
    assert parse_time("2026-03-01T01:02:03.5Z") == day + 3_600_000 + 2 * 60_000 + 3_500
    assert parse_time("2026-03-01T00:00:00.123456789Z") == day + 123
    assert parse_time("2026-03-01T01:00:00+01:00") == day
    assert parse_time("2026-02-28T23:30:00-00:30") == day
    assert parse_time("1969-12-31T23:59:59Z") == -1_000
    for bad in [
        "",
        "2026-3-01",
        "2026-02-30",
        "2026-03-01T24:00:00Z",
        "2026-03-01T00:60:00Z",
        "2026-03-01T00:00:00",
        "2026-03-01T00:00:00.Z",
        "2026-03-01T00:00:00+0100",
        "2026-03-01T00:00:00+01:60",
        "2026-03-01X00:00:00Z",
        "+2026-03-01",
        "2026-03-01T00:00:00Z ",
    ]:
        with pytest.raises(ValueError):
            parse_time(bad)


def test_results_the_component_could_not_lower_fail_the_test():
    import retention_sdk

    class Raw(Plugin):
        INFO = Info("raw", "1", "t")

        def decide(self, seg):
            return Decision.keep()

    Policy = retention_sdk.export(Raw)

    class Sloppy(Policy):
        def decide(self, batch):
            return _native.Verdicts(bytearray(len(batch.end_ms)), [], [])

    with pytest.raises(AssertionError, match="verdicts.actions is bytearray, not bytes"):
        Pass(NOW).segment(seg("a"))._run(Sloppy)
