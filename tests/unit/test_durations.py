"""Times as the snapshot and the run document write them (`wfrun.durations.to_iso`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from wfrun.durations import parse_iso, to_iso


def reference(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{moment.astimezone(UTC).microsecond // 1000:03d}Z"


def test_utc_with_a_z_to_the_millisecond() -> None:
    moment = datetime(2026, 11, 22, 9, 0, 1, 234567, tzinfo=UTC)
    assert to_iso(moment) == "2026-11-22T09:00:01.234Z"
    paris = moment.astimezone(timezone(timedelta(hours=1)))
    assert to_iso(paris) == "2026-11-22T09:00:01.234Z"  # the same instant, said in UTC
    assert parse_iso(to_iso(moment)) == moment.replace(microsecond=234000)


aware = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                     timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5, minutes=-30))]))


@given(st.lists(aware, min_size=1, max_size=6))
def test_each_moment_gets_its_own_text_in_any_order(moments: list[datetime]) -> None:
    # to_iso remembers the last moment it formatted; repeats and alternations must not confuse it
    for moment in moments + moments[::-1] + moments:
        assert to_iso(moment) == reference(moment)
