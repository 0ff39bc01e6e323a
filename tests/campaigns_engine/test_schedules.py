"""Schedules run on each community's wall clock, across DST changes, outside quiet hours."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from campaigns.communities import Community
from campaigns.errors import InvalidInput
from campaigns.outreach.models import Campaign, CampaignKind
from campaigns.outreach.schedules import (
    check_not_over,
    defer_past_quiet_hours,
    next_runs,
    paced_send_time,
    parse_schedule,
)

UTC = dt.UTC


def place(
    timezone: str, quiet: tuple[str, str] | None = None, name: str | None = None
) -> Community:
    return Community(
        name=name or timezone,
        country="MX",
        timezone=timezone,
        default_language="es",
        quiet_start=dt.time.fromisoformat(quiet[0]) if quiet else None,
        quiet_end=dt.time.fromisoformat(quiet[1]) if quiet else None,
    )


def campaign(schedule: dict[str, Any], kind: CampaignKind = CampaignKind.announcement) -> Campaign:
    return Campaign(kind=kind, schedule=parse_schedule(schedule, kind=kind).as_json())


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


AFTER = at(2026, 11, 28, 12, 0)


def due(c: Campaign, community: Community, count: int = 1, after: dt.datetime = AFTER) -> list[Any]:
    return [r.due_at for r in next_runs(c, community, after=after, count=count)]


def test_nine_in_the_morning_is_nine_in_each_community() -> None:
    once = campaign({"type": "once", "local": "2026-12-01T09:00"})
    assert due(once, place("America/Mexico_City", name="Tapachula")) == [at(2026, 12, 1, 15)]
    assert due(once, place("America/Port-au-Prince")) == [at(2026, 12, 1, 14)]
    assert due(once, place("America/Santo_Domingo")) == [at(2026, 12, 1, 13)]
    # Only one run, ever; none once it has gone by.
    assert len(next_runs(once, place("America/Santo_Domingo"), after=AFTER, count=5)) == 1
    assert due(once, place("America/Santo_Domingo"), after=at(2026, 12, 1, 13)) == []


def test_weekly_rule_keeps_the_local_hour_across_dst() -> None:
    weekly = campaign(
        {
            "type": "rrule",
            "rrule": "FREQ=WEEKLY;BYDAY=MO",
            "local_time": "09:00",
            "start": "2027-03-01",
        }
    )
    after = at(2027, 2, 1)
    # Tijuana moves its clocks on 14 March 2027: the UTC hour changes, the local one does not.
    assert due(weekly, place("America/Tijuana"), 3, after) == [
        at(2027, 3, 1, 17),
        at(2027, 3, 8, 17),
        at(2027, 3, 15, 16),
    ]
    # Santo Domingo has no DST: always 13:00 UTC.
    assert due(weekly, place("America/Santo_Domingo"), 3, after) == [
        at(2027, 3, 1, 13),
        at(2027, 3, 8, 13),
        at(2027, 3, 15, 13),
    ]


def test_weekly_on_chosen_days_until_an_end_date() -> None:
    rule = campaign(
        {
            "type": "rrule",
            "rrule": "FREQ=WEEKLY;BYDAY=MO,TH",
            "local_time": "18:30",
            "start": "2026-12-01",
            "until": "2026-12-14",
        }
    )
    runs = next_runs(rule, place("America/Mexico_City"), after=AFTER, count=10)
    local = [r.scheduled_for.astimezone(dt.timezone(dt.timedelta(hours=-6))) for r in runs]
    assert [d.strftime("%a %d %H:%M") for d in local] == [
        "Thu 03 18:30",
        "Mon 07 18:30",
        "Thu 10 18:30",
        "Mon 14 18:30",
    ]


def test_monthly_and_daily_rules() -> None:
    monthly = campaign(
        {
            "type": "rrule",
            "rrule": "FREQ=MONTHLY;BYMONTHDAY=1",
            "local_time": "08:00",
            "start": "2027-01-01",
        }
    )
    tijuana = place("America/Tijuana")
    assert due(monthly, tijuana, 4, at(2027, 1, 15)) == [
        at(2027, 2, 1, 16),
        at(2027, 3, 1, 16),
        at(2027, 4, 1, 15),  # after the DST change
        at(2027, 5, 1, 15),
    ]
    daily = campaign(
        {
            "type": "rrule",
            "rrule": "FREQ=DAILY;COUNT=3",
            "local_time": "07:00",
            "start": "2026-12-01",
        }
    )
    assert len(next_runs(daily, tijuana, after=AFTER, count=10)) == 3


def test_quiet_hours_defer_a_run_to_the_end_of_the_window() -> None:
    night = place("America/Mexico_City", quiet=("21:00", "08:00"))
    late = campaign({"type": "once", "local": "2026-12-01T22:30"})
    early = campaign({"type": "once", "local": "2026-12-01T06:00"})
    [run] = next_runs(late, night, after=AFTER, count=1)
    assert run.scheduled_for == at(2026, 12, 2, 4, 30)
    assert run.due_at == at(2026, 12, 2, 14, 0)  # 08:00 the next morning, local
    assert run.deferred
    assert due(early, night) == [at(2026, 12, 1, 14, 0)]  # 08:00 the same morning
    lunch = place("America/Santo_Domingo", quiet=("12:00", "14:00"))
    assert due(campaign({"type": "once", "local": "2026-12-01T13:00"}), lunch) == [
        at(2026, 12, 1, 18, 0)
    ]
    # Outside the window nothing moves.
    [plain] = next_runs(
        campaign({"type": "once", "local": "2026-12-01T09:00"}), night, after=AFTER, count=1
    )
    assert not plain.deferred


def test_quiet_hours_every_day_of_a_daily_rule() -> None:
    c = campaign(
        {"type": "rrule", "rrule": "FREQ=DAILY", "local_time": "23:00", "start": "2026-12-01"}
    )
    night = place("America/Port-au-Prince", quiet=("22:00", "07:00"))
    runs = next_runs(c, night, after=AFTER, count=3)
    assert [r.due_at for r in runs] == [
        at(2026, 12, 2, 12),
        at(2026, 12, 3, 12),
        at(2026, 12, 4, 12),
    ]
    for r in runs:
        assert not night.in_quiet_hours(r.due_at)


def test_wall_clock_times_that_do_not_exist_or_happen_twice() -> None:
    tijuana = place("America/Tijuana")
    # 02:30 on 14 March 2027 never happens in Tijuana: taken one hour later on the wall clock.
    skipped = campaign({"type": "once", "local": "2027-03-14T02:30"})
    assert due(skipped, tijuana) == [at(2027, 3, 14, 10, 30)]
    # 01:30 on 1 November 2026 happens twice: the first one.
    twice = campaign({"type": "once", "local": "2026-11-01T01:30"})
    assert due(twice, tijuana, after=at(2026, 10, 1)) == [at(2026, 11, 1, 8, 30)]


def test_drip_runs_every_day_at_the_local_hour() -> None:
    drip = campaign({"type": "drip", "local_time": "10:00"}, kind=CampaignKind.drip)
    assert due(drip, place("America/Santo_Domingo"), 3) == [
        at(2026, 11, 28, 14),  # 08:00 there now: 10:00 is still to come today
        at(2026, 11, 29, 14),
        at(2026, 11, 30, 14),
    ]


def test_unknown_or_absent_time_zone_is_refused() -> None:
    once = campaign({"type": "once", "local": "2026-12-01T09:00"})
    with pytest.raises(InvalidInput, match="unknown time zone"):
        next_runs(once, place("Mars/Olympus_Mons"), after=AFTER, count=1)
    with pytest.raises(InvalidInput, match="no time zone"):
        next_runs(once, place(""), after=AFTER, count=1)
    with pytest.raises(InvalidInput, match="unknown time zone"):
        defer_past_quiet_hours(place("Nowhere/Else", quiet=("21:00", "08:00")), AFTER)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"type": "weekly"}, "'once' or 'rrule'"),
        ({"type": "once"}, "schedule.local is required"),
        ({"type": "once", "local": "1 December"}, "not a date and time"),
        ({"type": "once", "local": "2026-12-01T09:00-06:00"}, "leave out the offset"),
        (
            {"type": "rrule", "rrule": "FREQ=HOURLY", "local_time": "09:00", "start": "2026-12-01"},
            "FREQ=DAILY",
        ),
        (
            {
                "type": "rrule",
                "rrule": "FREQ=DAILY;BYHOUR=3",
                "local_time": "09:00",
                "start": "2026-12-01",
            },
            "may not set BYHOUR",
        ),
        (
            {
                "type": "rrule",
                "rrule": "FREQ=DAILY;BYDAY=XX",
                "local_time": "09:00",
                "start": "2026-12-01",
            },
            "not a valid RRULE",
        ),
        (
            {"type": "rrule", "rrule": "FREQ=DAILY", "local_time": "9h", "start": "2026-12-01"},
            "not a time",
        ),
        (
            {
                "type": "rrule",
                "rrule": "FREQ=DAILY",
                "local_time": "09:00",
                "start": "2026-12-10",
                "until": "2026-12-01",
            },
            "before schedule.start",
        ),
        (
            {
                "type": "rrule",
                "rrule": "FREQ=DAILY;COUNT=2",
                "local_time": "09:00",
                "start": "2026-12-01",
                "until": "2026-12-09",
            },
            "COUNT together",
        ),
        ({"type": "drip", "local_time": "10:00"}, "only drip campaigns"),
    ],
)
def test_malformed_schedules_are_named(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        parse_schedule(raw, kind=CampaignKind.announcement)
    assert (info.value.field or "").startswith("schedule")


def test_a_drip_needs_a_drip_schedule() -> None:
    with pytest.raises(InvalidInput, match="drip"):
        parse_schedule({"type": "once", "local": "2026-12-01T09:00"}, kind=CampaignKind.drip)


def test_schedules_over_everywhere_are_refused() -> None:
    past = parse_schedule({"type": "once", "local": "2026-11-01T09:00"}, kind=CampaignKind.poll)
    with pytest.raises(InvalidInput, match="in the past"):
        check_not_over(past, now=AFTER)
    ended = parse_schedule(
        {
            "type": "rrule",
            "rrule": "FREQ=DAILY",
            "local_time": "09:00",
            "start": "2026-10-01",
            "until": "2026-10-31",
        },
        kind=CampaignKind.announcement,
    )
    with pytest.raises(InvalidInput, match="in the past"):
        check_not_over(ended, now=AFTER)
    # Later today somewhere is not over.
    check_not_over(
        parse_schedule({"type": "once", "local": "2026-11-28T09:00"}, kind=CampaignKind.poll),
        now=AFTER,
    )


def test_pacing_spreads_sends_evenly_over_the_window() -> None:
    start = at(2026, 12, 1, 15)
    assert [paced_send_time(start, i, 4, 120) for i in range(4)] == [
        start,
        start + dt.timedelta(minutes=30),
        start + dt.timedelta(minutes=60),
        start + dt.timedelta(minutes=90),
    ]
    assert {paced_send_time(start, i, 1000, 0) for i in range(1000)} == {start}
    times = [paced_send_time(start, i, 20_000, 120) for i in range(20_000)]
    assert times == sorted(times)
    assert times[-1] < start + dt.timedelta(minutes=120)
    per_minute: dict[int, int] = {}
    for t in times:
        minute = int((t - start).total_seconds() // 60)
        per_minute[minute] = per_minute.get(minute, 0) + 1
    assert len(per_minute) == 120
    assert max(per_minute.values()) - min(per_minute.values()) <= 1
    with pytest.raises(ValueError, match="index"):
        paced_send_time(start, 4, 4, 10)
