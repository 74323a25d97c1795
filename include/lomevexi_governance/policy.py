"""The governance policy, loaded from the one reviewed file ``policy.yaml``.

Everything the jobs enforce (tables and allowed columns, sensitivity classes, retention,
backup retention, business hours, the access matrix) comes from here, so a reviewer changes
one file and every job follows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from lomevexi_governance.errors import PolicyError

POLICY_ENV = "GOVERNANCE_POLICY_FILE"
DEFAULT_POLICY_PATH = Path(__file__).with_name("policy.yaml")

COLUMN_TYPES = ("int64", "string", "timestamp")
SENSITIVITY_CLASSES = ("contact", "payment", "communication", "operational")
EPOCH_UNITS = ("day", "week", "month")
_COLUMN_KEYS = {"type", "class", "nullable", "values", "values_ref", "format", "free_text", "min"}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    sensitivity: str
    nullable: bool = False
    values: tuple[str, ...] | None = None
    format: str | None = None
    free_text: bool = False
    min: int | None = None


@dataclass(frozen=True)
class Parent:
    column: str
    table: str
    optional: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    backup: bool
    primary_key: str
    columns: tuple[Column, ...]
    parent: Parent | None = None
    references: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise PolicyError(f"table {self.name!r} has no column {name!r} in the policy")

    @property
    def text_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.type == "string"]


@dataclass(frozen=True)
class RetentionRule:
    table: str
    clock: str
    days: int
    cascade: tuple[str, ...] = ()
    protected_by: tuple[str, ...] = ()

    @property
    def period(self) -> dt.timedelta:
        return dt.timedelta(days=self.days)


@dataclass(frozen=True)
class BusinessHours:
    timezone: str
    weekdays: tuple[int, ...]  # 0 = Monday
    start: dt.time
    end: dt.time
    holiday_country: str | None
    extra_holidays: tuple[dt.date, ...]
    working_days: tuple[dt.date, ...]


@dataclass(frozen=True)
class RoleGrant:
    read: frozenset[str]
    write: frozenset[str]


@dataclass(frozen=True)
class Policy:
    path: str
    sha256: str
    tables: dict[str, Table]
    retention: dict[str, RetentionRule]
    backup_retention_days: int
    epoch_unit: str
    row_group_rows: int
    batch_rows: int
    backup_workers: int
    business_hours: BusinessHours
    data_categories: dict[str, str]
    roles: dict[str, RoleGrant]
    delete_allowed_roles: frozenset[str]
    thresholds: dict[str, int]
    severities: dict[str, str]
    drill_timeout_minutes: int
    drill_sample_rows: int
    raw: dict[str, Any]

    @property
    def backup_tables(self) -> list[Table]:
        """Tables in scope for recovery points, parents before children."""
        return [t for t in self.tables.values() if t.backup]

    def table(self, name: str) -> Table:
        try:
            return self.tables[name]
        except KeyError:
            raise PolicyError(
                f"unknown table {name!r}; the policy knows {sorted(self.tables)}"
            ) from None


def _require(mapping: dict[str, Any], key: str, where: str) -> Any:
    if key not in mapping:
        raise PolicyError(f"policy: {where} is missing {key!r}")
    return mapping[key]


def _parse_time(value: str, where: str) -> dt.time:
    try:
        return dt.time.fromisoformat(str(value))
    except ValueError:
        raise PolicyError(f"policy: {where} is not a time of day (HH:MM)") from None


def _parse_table(name: str, spec: dict[str, Any], value_sets: dict[str, list[str]]) -> Table:
    columns = []
    for col_name, col in _require(spec, "columns", f"tables.{name}").items():
        where = f"tables.{name}.columns.{col_name}"
        unknown = set(col) - _COLUMN_KEYS
        if unknown:
            raise PolicyError(f"policy: {where} has unknown setting(s) {sorted(unknown)}")
        ctype = _require(col, "type", where)
        if ctype not in COLUMN_TYPES:
            raise PolicyError(f"policy: {where}.type must be one of {COLUMN_TYPES}, not {ctype!r}")
        sclass = _require(col, "class", where)
        if sclass not in SENSITIVITY_CLASSES:
            raise PolicyError(f"policy: {where}.class must be one of {SENSITIVITY_CLASSES}")
        values = col.get("values")
        if "values_ref" in col:
            ref = col["values_ref"]
            if ref not in value_sets:
                raise PolicyError(f"policy: {where}.values_ref names unknown value set {ref!r}")
            values = value_sets[ref]
        columns.append(
            Column(
                name=col_name,
                type=ctype,
                sensitivity=sclass,
                nullable=bool(col.get("nullable", False)),
                values=tuple(str(v) for v in values) if values is not None else None,
                format=col.get("format"),
                free_text=bool(col.get("free_text", False)),
                min=col.get("min"),
            )
        )
    pk = _require(spec, "primary_key", f"tables.{name}")
    parent = None
    if "parent" in spec:
        p = spec["parent"]
        parent = Parent(column=p["column"], table=p["table"], optional=bool(p.get("optional", False)))
    references = {
        col: tuple(target.split(".", 1)) for col, target in (spec.get("references") or {}).items()
    }
    table = Table(
        name=name,
        backup=bool(spec.get("backup", False)),
        primary_key=pk,
        columns=tuple(columns),
        parent=parent,
        references=references,  # type: ignore[arg-type]
    )
    if pk not in table.column_names:
        raise PolicyError(f"policy: tables.{name}.primary_key {pk!r} is not one of its columns")
    return table


def parse_policy(text: str, path: str = "<memory>") -> Policy:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"policy file {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or raw.get("version") != 1:
        raise PolicyError(f"policy file {path} must be a mapping with version: 1")
    value_sets = raw.get("value_sets") or {}
    tables = {n: _parse_table(n, s, value_sets) for n, s in _require(raw, "tables", "top level").items()}

    for t in tables.values():
        for col, (rt, rc) in t.references.items():
            if rt not in tables or rc not in tables[rt].column_names:
                raise PolicyError(f"policy: tables.{t.name}.references.{col} points to unknown {rt}.{rc}")

    retention = {}
    for tname, r in (raw.get("retention") or {}).items():
        if tname not in tables:
            raise PolicyError(f"policy: retention names unknown table {tname!r}")
        clock = _require(r, "clock", f"retention.{tname}")
        if tables[tname].column(clock).type != "timestamp":
            raise PolicyError(f"policy: retention.{tname}.clock {clock!r} is not a timestamp column")
        retention[tname] = RetentionRule(
            table=tname,
            clock=clock,
            days=int(_require(r, "days", f"retention.{tname}")),
            cascade=tuple(r.get("cascade") or ()),
            protected_by=tuple(r.get("protected_by") or ()),
        )

    rp = _require(raw, "recovery_points", "top level")
    epoch = rp.get("epoch", "week")
    if epoch not in EPOCH_UNITS:
        raise PolicyError(f"policy: recovery_points.epoch must be one of {EPOCH_UNITS}")

    bh = _require(raw, "business_hours", "top level")
    hol = bh.get("holidays") or {}
    try:
        weekdays = tuple(WEEKDAYS.index(d) for d in bh.get("weekdays", WEEKDAYS[:5]))
    except ValueError:
        raise PolicyError(f"policy: business_hours.weekdays must use {WEEKDAYS}") from None
    business_hours = BusinessHours(
        timezone=bh.get("timezone", "Asia/Tokyo"),
        weekdays=weekdays,
        start=_parse_time(bh.get("start", "09:00"), "business_hours.start"),
        end=_parse_time(bh.get("end", "18:00"), "business_hours.end"),
        holiday_country=hol.get("country"),
        extra_holidays=tuple(dt.date.fromisoformat(str(d)) for d in hol.get("extra") or ()),
        working_days=tuple(dt.date.fromisoformat(str(d)) for d in hol.get("working") or ()),
    )

    access = raw.get("access") or {}
    roles = {
        role: RoleGrant(read=frozenset(g.get("read") or ()), write=frozenset(g.get("write") or ()))
        for role, g in (access.get("roles") or {}).items()
    }
    drill = raw.get("drill") or {}
    return Policy(
        path=path,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        tables=tables,
        retention=retention,
        backup_retention_days=int(rp.get("retention_days", 35)),
        epoch_unit=epoch,
        row_group_rows=int(rp.get("row_group_rows", 131072)),
        batch_rows=int(rp.get("batch_rows", 65536)),
        backup_workers=_positive(rp.get("workers", 1), "recovery_points.workers"),
        business_hours=business_hours,
        data_categories=dict(raw.get("data_categories") or {}),
        roles=roles,
        delete_allowed_roles=frozenset(access.get("delete_allowed_roles") or ()),
        thresholds={k: int(v) for k, v in (access.get("thresholds") or {}).items()},
        severities=dict(access.get("severities") or {}),
        drill_timeout_minutes=int(drill.get("timeout_minutes", 60)),
        drill_sample_rows=int(drill.get("sample_rows", 1000)),
        raw=raw,
    )


def _positive(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PolicyError(f"policy: {where} must be a whole number >= 1, not {value!r}")
    return value


def policy_path() -> Path:
    return Path(os.environ.get(POLICY_ENV) or DEFAULT_POLICY_PATH)


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int) -> Policy:
    return parse_policy(Path(path).read_text(encoding="utf-8"), path)


def load_policy(path: str | os.PathLike[str] | None = None) -> Policy:
    """Load (and cache, until the file changes) the policy file."""
    p = Path(path) if path is not None else policy_path()
    try:
        mtime = p.stat().st_mtime_ns
    except FileNotFoundError:
        raise PolicyError(f"policy file {p} does not exist") from None
    return _load(str(p), mtime)
