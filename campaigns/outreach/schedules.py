"""When a campaign's runs happen: in each community's own time zone, outside its quiet hours.

A schedule is stored on the campaign as JSON, in one of three shapes::

    {"type": "once", "local": "2026-12-01T09:00"}
    {"type": "rrule", "rrule": "FREQ=WEEKLY;BYDAY=MO,TH", "local_time": "09:00",
     "start": "2026-12-01", "until": "2027-03-01"}            # until: optional, inclusive
    {"type": "drip", "local_time": "10:00"}                   # daily; drip campaigns only

Times are *local*: "09:00" is 09:00 in Tapachula and 09:00 in Port-au-Prince, two different UTC
instants.  Recurrences are evaluated on the local wall clock (python-dateutil's ``rrule``), so
a weekly 09:00 stays 09:00 across a DST change.  A local time that does not exist (the hour
skipped when clocks go forward) is taken at the offset before the change, i.e. one hour later
on the wall clock; one that happens twice (clocks going back) is taken the first time.

A run whose local time falls in the community's quiet hours is deferred to the end of the quiet
window, never dropped: ``RunTime.scheduled_for`` is the occurrence itself (the run's identity),
``RunTime.due_at`` when it may start.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from dateutil.rrule import rrule, rrulestr

from campaigns.communities import Community
from campaigns.errors import InvalidInput
from campaigns.outreach.models import Campaign, CampaignKind

FIELD = "schedule"
ALLOWED_FREQ = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
# The time of day comes from local_time, the bounds from start/until.
FORBIDDEN_PARTS = ("DTSTART", "UNTIL", "BYHOUR", "BYMINUTE", "BYSECOND", "BYSETPOS")
# Whatever happens in between, no zone is further behind UTC than this.
_LATEST_ZONE = dt.timezone(dt.timedelta(hours=-12))


@dataclass(frozen=True)
class Once:
    local: dt.datetime  # naive: a wall-clock time

    def as_json(self) -> dict[str, Any]:
        return {"type": "once", "local": self.local.isoformat(timespec="minutes")}


@dataclass(frozen=True)
class Recurring:
    rule: str
    local_time: dt.time
    start: dt.date
    until: dt.date | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "type": "rrule",
            "rrule": self.rule,
            "local_time": self.local_time.isoformat(timespec="minutes"),
            "start": self.start.isoformat(),
            "until": self.until.isoformat() if self.until else None,
        }

    def rrule(self) -> rrule:
        rule = rrulestr(self.rule, dtstart=dt.datetime.combine(self.start, self.local_time))
        assert isinstance(rule, rrule)
        if self.until is not None:
            rule = rule.replace(until=dt.datetime.combine(self.until, self.local_time))
        return rule


@dataclass(frozen=True)
class Drip:
    local_time: dt.time

    def as_json(self) -> dict[str, Any]:
        return {"type": "drip", "local_time": self.local_time.isoformat(timespec="minutes")}


Schedule = Once | Recurring | Drip


@dataclass(frozen=True)
class RunTime:
    scheduled_for: dt.datetime  # UTC instant of the occurrence's local time
    due_at: dt.datetime  # UTC; later than scheduled_for when deferred past quiet hours

    @property
    def deferred(self) -> bool:
        return self.due_at != self.scheduled_for


# --- parsing -----------------------------------------------------------------------------------


def _time(raw: Mapping[str, Any], key: str) -> dt.time:
    value = raw.get(key)
    if not isinstance(value, str):
        raise InvalidInput(f"schedule.{key} is required, e.g. '09:00'", field=f"{FIELD}.{key}")
    try:
        parsed = dt.time.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(
            f"schedule.{key} {value!r} is not a time like '09:00'", field=f"{FIELD}.{key}"
        ) from exc
    if parsed.tzinfo is not None:
        raise InvalidInput(
            f"schedule.{key} is a local time: leave out the offset", field=f"{FIELD}.{key}"
        )
    return parsed.replace(second=0, microsecond=0)


def _date(raw: Mapping[str, Any], key: str, *, required: bool) -> dt.date | None:
    value = raw.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"schedule.{key} is required, e.g. '2026-12-01'", field=f"{FIELD}.{key}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(
            f"schedule.{key} {value!r} is not a date like '2026-12-01'", field=f"{FIELD}.{key}"
        ) from exc


def _rule(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(
            "schedule.rrule is required, e.g. 'FREQ=WEEKLY;BYDAY=MO,TH'", field=f"{FIELD}.rrule"
        )
    rule = text.strip().upper().removeprefix("RRULE:")
    parts: dict[str, str] = {}
    for part in filter(None, rule.split(";")):
        key, _, value = part.partition("=")
        parts[key.strip()] = value.strip()
    if parts.get("FREQ") not in ALLOWED_FREQ:
        raise InvalidInput(
            f"schedule.rrule needs FREQ={'|'.join(ALLOWED_FREQ)}", field=f"{FIELD}.rrule"
        )
    for part in FORBIDDEN_PARTS:
        if part in parts:
            raise InvalidInput(
                f"schedule.rrule may not set {part}: use local_time, start and until",
                field=f"{FIELD}.rrule",
            )
    try:
        rrulestr(rule, dtstart=dt.datetime(2026, 1, 1), ignoretz=True)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            f"schedule.rrule is not a valid RRULE: {exc}", field=f"{FIELD}.rrule"
        ) from exc
    return rule


def parse_schedule(raw: Mapping[str, Any], *, kind: CampaignKind) -> Schedule:
    """The schedule in ``raw`` (stored JSON or API input), or ``InvalidInput`` naming the field."""
    kind_of = raw.get("type")
    if kind == CampaignKind.drip:
        if kind_of != "drip":
            raise InvalidInput(
                "a drip campaign's schedule is {'type': 'drip', 'local_time': 'HH:MM'}",
                field=f"{FIELD}.type",
            )
        return Drip(local_time=_time(raw, "local_time"))
    if kind_of == "once":
        value = raw.get("local")
        if not isinstance(value, str):
            raise InvalidInput(
                "schedule.local is required, e.g. '2026-12-01T09:00'", field=f"{FIELD}.local"
            )
        try:
            local = dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidInput(
                f"schedule.local {value!r} is not a date and time like '2026-12-01T09:00'",
                field=f"{FIELD}.local",
            ) from exc
        if local.tzinfo is not None:
            raise InvalidInput(
                "schedule.local is each community's local time: leave out the offset",
                field=f"{FIELD}.local",
            )
        return Once(local=local.replace(second=0, microsecond=0))
    if kind_of == "rrule":
        start = _date(raw, "start", required=True)
        assert start is not None
        until = _date(raw, "until", required=False)
        if until is not None and until < start:
            raise InvalidInput("schedule.until is before schedule.start", field=f"{FIELD}.until")
        rule = _rule(raw.get("rrule"))
        if until is not None and "COUNT=" in rule:
            raise InvalidInput(
                "schedule.rrule may not set COUNT together with schedule.until",
                field=f"{FIELD}.until",
            )
        schedule = Recurring(
            rule=rule,
            local_time=_time(raw, "local_time"),
            start=start,
            until=until,
        )
        if schedule.rrule().after(dt.datetime.combine(start, dt.time.min), inc=True) is None:
            raise InvalidInput("schedule.rrule has no occurrence at all", field=f"{FIELD}.rrule")
        return schedule
    if kind_of == "drip":
        raise InvalidInput("only drip campaigns have a drip schedule", field=f"{FIELD}.type")
    raise InvalidInput("schedule.type must be 'once' or 'rrule'", field=f"{FIELD}.type")


def check_not_over(schedule: Schedule, *, now: dt.datetime) -> None:
    """Refuse a schedule that has no occurrence left in any time zone (checked on save)."""
    latest_now = now.astimezone(_LATEST_ZONE).replace(tzinfo=None)
    if isinstance(schedule, Once) and schedule.local <= latest_now:
        raise InvalidInput(
            f"the schedule is in the past: {schedule.local.isoformat(timespec='minutes')} "
            "has gone by in every time zone",
            field=f"{FIELD}.local",
        )
    if isinstance(schedule, Recurring) and schedule.rrule().after(latest_now) is None:
        raise InvalidInput(
            "the schedule is in the past: it has no occurrence left", field=f"{FIELD}.until"
        )


def campaign_schedule(campaign: Campaign) -> Schedule:
    if campaign.schedule is None:
        raise InvalidInput("the campaign has no schedule yet", field=FIELD)
    return parse_schedule(campaign.schedule, kind=campaign.kind)


# --- evaluation --------------------------------------------------------------------------------


def community_zone(community: Community) -> zoneinfo.ZoneInfo:
    """The community's time zone, or ``InvalidInput`` if it has none the system knows."""
    name = (community.timezone or "").strip()
    if not name:
        raise InvalidInput(
            f"community {community.name!r} has no time zone: set an IANA name such as "
            "America/Mexico_City",
            field="timezone",
        )
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(
            f"community {community.name!r} has an unknown time zone {name!r}", field="timezone"
        ) from exc


def to_utc(local: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """A wall-clock time in ``zone`` as a UTC instant (fold=0; see the module docstring)."""
    return local.replace(tzinfo=zone, fold=0).astimezone(dt.UTC)


def defer_past_quiet_hours(community: Community, at: dt.datetime) -> dt.datetime:
    """``at``, or the end of the community's quiet window if ``at`` falls inside it."""
    if community.quiet_start is None or community.quiet_end is None:
        return at
    zone = community_zone(community)
    if not community.in_quiet_hours(at):
        return at
    local = at.astimezone(zone).replace(tzinfo=None)
    end = dt.datetime.combine(local.date(), community.quiet_end)
    if end <= local:  # a window that wraps midnight, and we are in its evening part
        end += dt.timedelta(days=1)
    return max(to_utc(end, zone), at)


def _local_occurrences(schedule: Schedule, start_local: dt.datetime) -> Iterator[dt.datetime]:
    """Wall-clock occurrences from about ``start_local`` on (callers filter exactly in UTC)."""
    if isinstance(schedule, Once):
        yield schedule.local
        return
    if isinstance(schedule, Recurring):
        yield from schedule.rrule().xafter(start_local, inc=True)
        return
    day = start_local.date()
    while True:
        yield dt.datetime.combine(day, schedule.local_time)
        day += dt.timedelta(days=1)


def occurrences(
    schedule: Schedule, community: Community, *, after: dt.datetime, count: int
) -> list[RunTime]:
    """The next ``count`` runs of ``schedule`` in ``community`` whose occurrence is after
    ``after`` (a UTC instant), each with its quiet-hour deferral."""
    if count < 1:
        return []
    zone = community_zone(community)
    # A day of margin: wall-clock and UTC order can differ around a DST change.
    start_local = after.astimezone(zone).replace(tzinfo=None) - dt.timedelta(days=1)
    found: list[RunTime] = []
    for local in _local_occurrences(schedule, start_local):
        instant = to_utc(local, zone)
        if instant <= after:
            continue
        found.append(
            RunTime(scheduled_for=instant, due_at=defer_past_quiet_hours(community, instant))
        )
        if len(found) >= count:
            break
    return found


def next_runs(
    campaign: Campaign, community: Community, *, after: dt.datetime, count: int
) -> list[RunTime]:
    """The campaign's next ``count`` runs in ``community`` after ``after``, in UTC."""
    return occurrences(campaign_schedule(campaign), community, after=after, count=count)


def paced_send_time(
    run_start: dt.datetime, index: int, total: int, pacing_minutes: int
) -> dt.datetime:
    """When the ``index``-th (0-based) of ``total`` sends of a run leaves: evenly over
    ``pacing_minutes`` from ``run_start`` (the first at the start, none at the window's end);
    all at ``run_start`` when pacing is 0."""
    if total < 1 or not 0 <= index < total:
        raise ValueError(f"index {index} is not within 0..{total - 1}")
    if pacing_minutes < 0:
        raise ValueError("pacing_minutes cannot be negative")
    window = pacing_minutes * 60_000_000
    return run_start + dt.timedelta(microseconds=window * index // total)
