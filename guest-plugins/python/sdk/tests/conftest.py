import pytest

from retention_sdk import Tier
from retention_sdk.testing import Pass, seg

NOW = "2026-03-01T00:00:00Z"


@pytest.fixture
def five():
    """Five segments a..e, one a day from 5 days old, in mixed tiers, with labels; added out of order."""
    return Pass(NOW).segments(
        [
            seg("c").age_days(3).tier(Tier.COMPRESSED).bytes(30).label("level", "info"),
            seg("a").age_days(5).bytes(10).rows(3).label("zone", "b").label("level", "debug"),
            seg("b").age_days(4).span_ms(3_600_000).bytes(20).label("level", "info"),
            seg("e").age_days(1).bytes(50).label("zone", "a").label("level", "debug"),
            seg("d").age_days(2).tier(Tier.ARCHIVED).bytes(40).label("zone", "a"),
        ]
    )
