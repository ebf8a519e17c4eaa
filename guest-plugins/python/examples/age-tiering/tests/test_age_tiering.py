"""The documented behaviour of age-tiering, run through retention_sdk.testing as the host runs it (the port of the
Rust example's tests), and its parsing helpers."""

import pytest

from app import ARCHIVE, COMPRESS, DROP, AgeTiering, longer, parse_override_key
from retention_sdk import DAY_MS, HOUR_MS, Action, PluginError, Tier
from retention_sdk.testing import Pass, seg

NOW = "2026-03-01T00:00:00Z"


def test_each_segment_takes_the_furthest_step_its_age_reached_that_its_tier_allows():
    out = (
        Pass(NOW)
        .param("compress_after_days", 1)
        .param("archive_after_days", 7)
        .param("drop_after_days", 30)
        .segment(seg("hot-31d").age_days(31))
        .segment(seg("archived-30d").age_days(30).tier(Tier.ARCHIVED))
        .segment(seg("archived-10d").age_days(10).tier(Tier.ARCHIVED))
        .segment(seg("compressed-8d").age_days(8).tier(Tier.COMPRESSED))
        .segment(seg("hot-7d").age_days(7))
        # 6 days and 23 hours: whole days round down, so still short of archive_after_days.
        .segment(seg("hot-6d23h").age_ms(7 * DAY_MS - HOUR_MS))
        .segment(seg("compressed-3d").age_days(3).tier(Tier.COMPRESSED))
        .segment(seg("hot-1d").age_days(1))
        .segment(seg("hot-23h").age_ms(23 * HOUR_MS))
        .segment(seg("hot-future").age_ms(-HOUR_MS))
        .run(AgeTiering)
    )
    assert out.plan() == [
        ("hot-31d", Action.DROP, "age 31d >= drop_after_days 30"),
        ("archived-30d", Action.DROP, "age 30d >= drop_after_days 30"),
        ("archived-10d", Action.KEEP, None),
        ("compressed-8d", Action.ARCHIVE, "age 8d >= archive_after_days 7"),
        ("hot-7d", Action.ARCHIVE, "age 7d >= archive_after_days 7"),
        ("hot-6d23h", Action.COMPRESS, "age 6d >= compress_after_days 1"),
        ("compressed-3d", Action.KEEP, None),
        ("hot-1d", Action.COMPRESS, "age 1d >= compress_after_days 1"),
        ("hot-23h", Action.KEEP, None),
        ("hot-future", Action.KEEP, None),
    ]


def test_an_absent_or_never_threshold_is_a_step_that_never_happens():
    out = (
        Pass(NOW)
        .param("compress_after_days", 2)
        .param("drop_after_days", "Never")
        .segment(seg("hot").age_days(5000))
        .segment(seg("compressed").age_days(5000).tier(Tier.COMPRESSED))
        .run(AgeTiering)
    )
    assert out.action("hot") == Action.COMPRESS
    assert out.action("compressed") == Action.KEEP
    out = Pass(NOW).segment(seg("ancient").age_days(100_000)).run(AgeTiering)
    assert out.action("ancient") == Action.KEEP


def test_a_label_override_replaces_the_default_for_matching_segments_shorter_or_longer():
    out = (
        Pass(NOW)
        .param("compress_after_days", 1)
        .param("drop_after_days", 30)
        .param("override.level.debug.drop_after_days", 7)
        .param("override.service.audit.drop_after_days", "never")
        .segment(seg("debug-9d").age_days(9).label("level", "debug"))
        .segment(seg("info-9d").age_days(9).label("level", "info"))
        .segment(seg("unlabelled-31d").age_days(31))
        .segment(seg("audit-400d").age_days(400).label("service", "audit"))
        .run(AgeTiering)
    )
    assert out.action("debug-9d") == Action.DROP
    assert out.reason("debug-9d") == "age 9d >= drop_after_days 7 (level=debug)"
    assert out.action("info-9d") == Action.COMPRESS
    assert out.reason("unlabelled-31d") == "age 31d >= drop_after_days 30"
    # The override only sets the drop threshold: the default compression still applies.
    assert out.action("audit-400d") == Action.COMPRESS
    assert out.reason("audit-400d") == "age 400d >= compress_after_days 1"


def test_when_several_overrides_match_the_longest_retention_wins():
    base = (
        Pass(NOW)
        .param("drop_after_days", 3)
        .param("override.level.debug.drop_after_days", 7)
        .param("override.service.api.drop_after_days", 14)
        .param("override.zone.eu.drop_after_days", "never")
    )
    out = (
        base.segment(seg("debug-api-10d").age_days(10).label("level", "debug").label("service", "api"))
        .segment(seg("debug-api-15d").age_days(15).label("level", "debug").label("service", "api"))
        .segment(
            seg("debug-api-eu-900d").age_days(900).label("level", "debug").label("service", "api").label("zone", "eu")
        )
        .run(AgeTiering)
    )
    assert out.action("debug-api-10d") == Action.KEEP
    assert out.reason("debug-api-15d") == "age 15d >= drop_after_days 14 (service=api)"
    assert out.action("debug-api-eu-900d") == Action.KEEP


def test_both_override_forms_work_and_values_may_contain_dots():
    out = (
        Pass(NOW)
        .param("override.host=db.internal.archive_after_days", 2)
        .param("override.host.db.internal.drop_after_days", 20)
        .segment(seg("db-3d").age_days(3).label("host", "db.internal"))
        .segment(seg("db-21d").age_days(21).label("host", "db.internal"))
        .segment(seg("db-other-21d").age_days(21).label("host", "db"))
        .run(AgeTiering)
    )
    assert out.reason("db-3d") == "age 3d >= archive_after_days 2 (host=db.internal)"
    assert out.reason("db-21d") == "age 21d >= drop_after_days 20 (host=db.internal)"
    assert out.action("db-other-21d") == Action.KEEP


def test_unknown_or_malformed_parameters_fail_the_pass():
    def err(key, value):
        return Pass(NOW).param(key, value).fail(AgeTiering)

    e = err("drop_after_day", "7")
    assert e.call == "begin"
    assert e.message == (
        "unknown parameter `drop_after_day` (expected: drop_after_days, archive_after_days, compress_after_days)"
    )
    assert err("drop_after_days", "soon").message.startswith(
        'parameter `drop_after_days` = "soon": expected a whole number of days or `never`'
    )
    assert "expected override.<label>" in err("override.level.debug.keep_after_days", "7").message
    assert "whole number of days" in err("override.level.debug.drop_after_days", "-1").message


def test_decisions_and_reasons_do_not_depend_on_the_batch_size():
    pass_ = (
        Pass(NOW)
        .param("compress_after_days", 1)
        .param("archive_after_days", 5)
        .param("drop_after_days", 9)
        .param("override.level.debug.drop_after_days", 3)
        .segments(
            seg("s%d" % i)
            .age_days(i % 12)
            .tier(list(Tier)[i % 3])
            .label("level", "debug" if i % 3 == 0 else "info")
            for i in range(40)
        )
    )
    whole = pass_.run(AgeTiering)
    assert len(whole.names_with(Action.DROP)) == 16
    for size in (1, 7):
        assert pass_.batch_size(size).run(AgeTiering).decisions() == whole.decisions(), "batch size %d" % size


def test_override_keys_parse_in_both_forms_and_values_may_contain_dots_and_equals():
    assert parse_override_key("override.level.debug.drop_after_days") == ("level", "debug", DROP)
    assert parse_override_key("override.level=debug.drop_after_days") == ("level", "debug", DROP)
    assert parse_override_key("override.host.db.internal.archive_after_days") == ("host", "db.internal", ARCHIVE)
    assert parse_override_key("override.host=db.internal.compress_after_days") == ("host", "db.internal", COMPRESS)
    assert parse_override_key("override.tag.a=b.drop_after_days") == ("tag", "a=b", DROP)
    assert parse_override_key("override.tag..drop_after_days") == ("tag", "", DROP)


@pytest.mark.parametrize(
    "bad",
    [
        "override.level.drop_after_days",
        "override.level.debug.keep_after_days",
        "override..debug.drop_after_days",
        "override.=debug.drop_after_days",
        "level.debug.drop_after_days",
    ],
)
def test_malformed_override_keys_are_refused(bad):
    with pytest.raises(PluginError):
        parse_override_key(bad)


def test_the_longest_retention_is_never_then_the_most_days():
    assert longer(None, 5)
    assert not longer(None, None)
    assert not longer(5, None)
    assert longer(6, 5)
    assert not longer(5, 5)
