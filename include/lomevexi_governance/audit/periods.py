"""Audit periods: whole local days (Asia/Tokyo by default) turned into exact UTC instants.

A period is a run of whole calendar days in the policy's business-hours time zone, from
``first_day`` to ``last_day`` inclusive. Its events are those with
``start_utc <= occurred_at < end_utc``, where ``start_utc`` is local midnight at the start of
``first_day`` and ``end_utc`` local midnight after ``last_day``.

Which periods a run audits follows only from the run's logical date and its params (never the
wall clock), so a run can be repeated and backfilled:

* scheduled (no ``start``/``end``): the previous local day; on a Monday also the previous ISO
  week (Monday to Sunday); on the 1st also the previous month;
* on demand (``start`` and/or ``end``): that window, as a ``custom`` period.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lomevexi_governance.errors import ConfigurationError

KINDS = ("daily", "weekly", "monthly", "custom")
#: The longest on-demand window, in days. Longer audits are split into several runs.
MAX_CUSTOM_DAYS = 366
UTC = dt.UTC


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(f"policy business_hours.timezone {name!r} is not a known time zone") from None


@dataclass(frozen=True)
class Period:
    """Whole local days ``first_day`` .. ``last_day`` (inclusive) in ``timezone``."""

    kind: str
    first_day: dt.date
    last_day: dt.date
    timezone: str = "Asia/Tokyo"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown period kind {self.kind!r}")
        if self.last_day < self.first_day:
            raise ValueError("a period's last day precedes its first day")

    @property
    def label(self) -> str:
        """``daily/2026-11-23``, ``weekly/2026-W47``, ``monthly/2026-11``, ``custom/A_B``."""
        if self.kind == "daily":
            return f"daily/{self.first_day.isoformat()}"
        if self.kind == "weekly":
            year, week, _ = self.first_day.isocalendar()
            return f"weekly/{year}-W{week:02d}"
        if self.kind == "monthly":
            return f"monthly/{self.first_day:%Y-%m}"
        return f"custom/{self.first_day.isoformat()}_{self.last_day.isoformat()}"

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def start_utc(self) -> dt.datetime:
        return local_midnight_utc(self.first_day, self.timezone)

    @property
    def end_utc(self) -> dt.datetime:
        """Exclusive end: local midnight after ``last_day``."""
        return local_midnight_utc(self.last_day + dt.timedelta(days=1), self.timezone)

    def day_list(self) -> list[dt.date]:
        return [self.first_day + dt.timedelta(days=i) for i in range(self.days)]

    def previous(self, count: int) -> list[Period]:
        """The ``count`` periods of the same kind just before this one, oldest first.

        A custom window has no natural predecessors; its trend is drawn per day instead.
        """
        out: list[Period] = []
        p = self
        for _ in range(count):
            if p.kind == "daily":
                d = p.first_day - dt.timedelta(days=1)
                p = Period("daily", d, d, self.timezone)
            elif p.kind == "weekly":
                p = Period(
                    "weekly",
                    p.first_day - dt.timedelta(days=7),
                    p.first_day - dt.timedelta(days=1),
                    self.timezone,
                )
            elif p.kind == "monthly":
                last = p.first_day - dt.timedelta(days=1)
                p = Period("monthly", last.replace(day=1), last, self.timezone)
            else:
                return []
            out.append(p)
        return list(reversed(out))

    def describe(self) -> dict[str, Any]:
        """The period as it appears in summary.json."""
        return {
            "kind": self.kind,
            "label": self.label,
            "timezone": self.timezone,
            "start_date": self.first_day.isoformat(),
            "end_date": self.last_day.isoformat(),
            "end_date_inclusive": True,
            "start_utc": iso_utc(self.start_utc),
            "end_utc": iso_utc(self.end_utc),
            "end_utc_exclusive": True,
            "days": self.days,
        }

    def to_xcom(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "first_day": self.first_day.isoformat(),
            "last_day": self.last_day.isoformat(),
            "timezone": self.timezone,
            "label": self.label,
        }

    @classmethod
    def from_xcom(cls, value: dict[str, str]) -> Period:
        return cls(
            kind=value["kind"],
            first_day=dt.date.fromisoformat(value["first_day"]),
            last_day=dt.date.fromisoformat(value["last_day"]),
            timezone=value["timezone"],
        )


def iso_utc(value: dt.datetime) -> str:
    """``2026-11-22T15:00:00Z`` (microseconds only when present)."""
    v = value.astimezone(UTC)
    text = v.replace(tzinfo=None).isoformat()
    return text + "Z"


def local_midnight_utc(day: dt.date, timezone: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone(timezone)).astimezone(UTC)


def local_date(instant: dt.datetime, timezone: str) -> dt.date:
    if instant.tzinfo is None:
        raise ValueError("a naive datetime is not an instant; give it a time zone")
    return instant.astimezone(zone(timezone)).date()


def _parse_param_date(value: Any, name: str) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        raise ConfigurationError(f"param {name!r} must be a date (YYYY-MM-DD), not a date and time")
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigurationError(f"param {name!r} must be a date in the form YYYY-MM-DD") from None


def plan_periods(
    logical_date: dt.datetime,
    start: Any = None,
    end: Any = None,
    *,
    timezone: str = "Asia/Tokyo",
    max_custom_days: int = MAX_CUSTOM_DAYS,
) -> list[Period]:
    """The periods one run audits (see the module docstring). Validates the params again."""
    first = _parse_param_date(start, "start")
    last = _parse_param_date(end, "end")
    if first is not None or last is not None:
        first = first or last
        last = last or first
        assert first is not None and last is not None
        if last < first:
            raise ConfigurationError(f"param 'end' ({last.isoformat()}) is before param 'start' ({first.isoformat()})")
        days = (last - first).days + 1
        if days > max_custom_days:
            raise ConfigurationError(f"the window start..end spans {days} days; at most {max_custom_days} days per run")
        return [Period("custom", first, last, timezone)]

    run_day = local_date(logical_date, timezone)
    report_day = run_day - dt.timedelta(days=1)
    periods = [Period("daily", report_day, report_day, timezone)]
    if run_day.isoweekday() == 1:  # Monday: the ISO week that ended yesterday
        periods.append(Period("weekly", report_day - dt.timedelta(days=6), report_day, timezone))
    if run_day.day == 1:  # the 1st: the month that ended yesterday
        periods.append(Period("monthly", report_day.replace(day=1), report_day, timezone))
    return periods
