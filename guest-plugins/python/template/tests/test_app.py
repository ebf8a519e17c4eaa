"""Run with ./test.sh: the plugin runs natively under pytest, through the SDK's own export glue."""

from app import Rule
from retention_sdk import Action
from retention_sdk.testing import Pass, seg

NOW = "2026-02-01T00:00:00Z"


def test_old_segments_are_dropped_younger_ones_compressed_and_audit_segments_kept():
    out = (
        Pass(NOW)
        .param("drop_after_days", 30)
        .segment(seg("old.log").age_days(31))
        .segment(seg("week.log").age_days(7))
        .segment(seg("today.log").age_days(0))
        .segment(seg("audit.log").age_days(400).label("kind", "audit"))
        .run(Rule)
    )
    assert out.action("old.log") == Action.DROP
    assert out.reason("old.log") == "older than drop_after_days"
    assert out.action("week.log") == Action.COMPRESS
    assert out.action("today.log") == Action.KEEP
    assert out.action("audit.log") == Action.COMPRESS


def test_a_missing_or_unknown_parameter_fails_the_pass():
    err = Pass(NOW).fail(Rule)
    assert (err.call, err.message) == ("begin", "missing required parameter `drop_after_days`")
    err = Pass(NOW).param("drop_after_days", 30).param("drop_after_day", 3).fail(Rule)
    assert err.message.startswith("unknown parameter `drop_after_day`")
