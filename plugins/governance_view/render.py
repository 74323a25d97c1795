"""Server-side HTML of the Governance view: one stylesheet, inline SVG charts, no script.

Every value goes through :func:`esc` (``html.escape`` with quotes) before it reaches the page;
links are built from ids the data layer already validated. Nothing is loaded from the network.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

from .auth import Viewer
from .data import (
    ACCESS_AUDIT,
    DAG_TITLES,
    ORDER_BACKUP,
    RESTORE_DRILL,
    RETENTION_PURGE,
    parse_time,
)

PRODUCT = "Lomevexi data governance"

CSS = """
:root{--fg:#1f2933;--muted:#5f6b7a;--border:#e3e7ec;--bg:#f4f6f9;--card:#fff;--accent:#0b6bcb;
--ok:#0b7a3b;--ok-bg:#e3f5e9;--fail:#b42318;--fail-bg:#fdeceb;--warn:#8a5a00;--warn-bg:#fff3d1;
--info:#1d4ed8;--info-bg:#e6eeff;--none:#5f6b7a;--none-bg:#eef1f4;color-scheme:light}
*{box-sizing:border-box}
html{background:var(--bg)}
body{margin:0;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue","Noto Sans JP",
"Hiragino Sans",Meiryo,sans-serif;color:var(--fg);font-variant-numeric:tabular-nums}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
header.top{background:#fff;border-bottom:1px solid var(--border);padding:18px 28px 0}
.brand{display:flex;align-items:flex-start;justify-content:space-between;gap:24px;flex-wrap:wrap}
.brand h1{font-size:21px;margin:0;font-weight:650;letter-spacing:-.01em;display:flex;align-items:center;gap:10px}
.brand p{margin:2px 0 0;color:var(--muted)}
.who{color:var(--muted);font-size:12.5px;text-align:right;line-height:1.6}
.who b{color:var(--fg);font-weight:600}
nav.sections{display:flex;gap:4px;margin-top:14px;flex-wrap:wrap}
nav.sections a{padding:8px 12px;border-bottom:2px solid transparent;color:var(--muted);font-weight:550}
nav.sections a:hover{color:var(--fg);text-decoration:none;border-bottom-color:var(--border)}
nav.sections a.on{color:var(--accent);border-bottom-color:var(--accent)}
main{padding:22px 28px 40px;max-width:1480px}
.crumbs{color:var(--muted);margin:0 0 10px;font-size:13px}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(210px,1fr));gap:14px;margin-bottom:22px}
.kpi{background:var(--card);border:1px solid var(--border);border-radius:10px;padding:14px 16px;
border-top:3px solid var(--none)}
.kpi.ok{border-top-color:var(--ok)}.kpi.fail{border-top-color:var(--fail)}.kpi.warn{border-top-color:#d4a017}
.kpi.info{border-top-color:var(--info)}
.kpi h3{margin:0;font-size:12px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);font-weight:600}
.kpi .big{font-size:22px;font-weight:650;margin:6px 0 2px}
.kpi .sub{color:var(--muted);font-size:12.5px}
section.card{background:var(--card);border:1px solid var(--border);border-radius:10px;margin:0 0 20px;
overflow:hidden}
section.card>header{display:flex;justify-content:space-between;align-items:baseline;gap:16px;flex-wrap:wrap;
padding:14px 18px;border-bottom:1px solid var(--border)}
section.card>header h2{margin:0;font-size:16px;font-weight:650}
section.card>header .hint{color:var(--muted);font-size:12.5px}
.body{padding:14px 18px}
table{border-collapse:collapse;width:100%}
.scroll{overflow-x:auto}
th,td{text-align:left;padding:8px 12px;border-bottom:1px solid var(--border);vertical-align:top}
th{font-size:11.5px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted);font-weight:600;
background:#fafbfc;white-space:nowrap}
tbody tr:hover td{background:#f9fbfd}
tbody tr:last-child td{border-bottom:0}
td.num,th.num{text-align:right;white-space:nowrap}
td.nowrap{white-space:nowrap}
.muted{color:var(--muted)}
.small{font-size:12.5px}
.pill{display:inline-block;padding:1px 9px;border-radius:999px;font-size:12px;font-weight:600;white-space:nowrap;
border:1px solid transparent}
.pill.ok{color:var(--ok);background:var(--ok-bg);border-color:#bfe6cc}
.pill.fail{color:var(--fail);background:var(--fail-bg);border-color:#f6c9c5}
.pill.warn{color:var(--warn);background:var(--warn-bg);border-color:#f1dc9f}
.pill.info{color:var(--info);background:var(--info-bg);border-color:#c7d7fb}
.pill.none{color:var(--none);background:var(--none-bg);border-color:#dde2e8}
.banner{display:flex;gap:12px;align-items:flex-start;padding:11px 14px;border-radius:8px;margin:0 0 12px;
border:1px solid}
.banner.ok{background:var(--ok-bg);border-color:#bfe6cc}.banner.fail{background:var(--fail-bg);border-color:#f6c9c5}
.banner.warn{background:var(--warn-bg);border-color:#f1dc9f}.banner.none{background:var(--none-bg);border-color:#dde2e8}
.banner b{display:block}
.empty{padding:22px 18px;color:var(--muted);text-align:center}
.btn{display:inline-block;padding:5px 12px;border:1px solid var(--border);border-radius:7px;background:#fff;
font-weight:550;font-size:13px;white-space:nowrap}
.btn:hover{background:#f3f7fc;text-decoration:none}
.btn.primary{background:var(--accent);border-color:var(--accent);color:#fff}
.links a+a{margin-left:10px}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(380px,1fr));gap:16px}
.chart{border:1px solid var(--border);border-radius:8px;padding:10px 12px}
.chart h4{margin:0 0 4px;font-size:13px}
.chart svg{width:100%;height:auto;display:block}
.legend{color:var(--muted);font-size:12px;margin-top:2px}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:16px}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:6px 18px;margin:0}
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0}
details summary{cursor:pointer;color:var(--accent)}
details table{margin-top:6px}
footer.foot{color:var(--muted);font-size:12px;padding:0 28px 28px;max-width:1480px}
.t,td code,.links a{white-space:nowrap}
.hash{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;color:var(--muted)}
"""

#: a shield with a check mark; ``fill``/``stroke`` chosen per use (the navigation shows it on both
#: a light and a dark, selected background, so its nav variant is outlined and filled)
ICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="24" height="24" fill="none" '
    'stroke="{color}" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">'
    '<path d="M12 3l7 3v5c0 4.5-3 8.3-7 10-4-1.7-7-5.5-7-10V6l7-3z" fill="{fill}"/><path d="M9 12l2 2 4-4"/></svg>'
)


# -- formatting ----------------------------------------------------------------------------


def esc(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def dash(value: Any) -> str:
    return '<span class="muted">—</span>' if value is None or value == "" else esc(value)


def fmt_int(value: Any) -> str:
    return dash(None) if value is None else f"{int(value):,}"


def fmt_bytes(value: Any) -> str:
    if value is None:
        return dash(None)
    n = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"  # pragma: no cover


def fmt_duration(seconds: Any) -> str:
    if seconds is None:
        return dash(None)
    s = float(seconds)
    if not math.isfinite(s):
        return dash(None)
    if s < 60:
        return f"{s:.2f} s" if s < 1 else f"{s:.1f} s" if s < 10 else f"{s:.0f} s"
    if s < 3600:
        m, r = divmod(round(s), 60)
        return f"{m} min {r} s" if r else f"{m} min"
    if s < 86400:
        h, r = divmod(round(s) // 60, 60)
        return f"{h} h {r} min" if r else f"{h} h"
    d, r = divmod(round(s) // 3600, 24)
    return f"{d} d {r} h" if r else f"{d} d"


def plural(n: Any, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def fmt_secs(seconds: Any) -> str:
    """A duration in seconds for a table cell (an em dash when not measured)."""
    return dash(None) if seconds is None else esc(_axis(seconds))


def fmt_time(value: Any, with_seconds: bool = False) -> str:
    parsed = parse_time(value) if not isinstance(value, dt.datetime) else value
    if parsed is None:
        return dash(None)
    utc = parsed.astimezone(dt.timezone.utc)
    jst = parsed.astimezone(dt.timezone(dt.timedelta(hours=9)))
    shown = utc.strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M")
    return f'<span class="t" title="{esc(jst.strftime("%Y-%m-%d %H:%M:%S"))} JST">{esc(shown)} UTC</span>'


def short_hash(value: Any, n: int = 12) -> str:
    if not value:
        return dash(None)
    return f'<span class="hash" title="{esc(value)}">{esc(str(value)[:n])}…</span>'


def pill(status: Mapping[str, Any] | None, label: str | None = None) -> str:
    if not status:
        return '<span class="pill none">none</span>'
    level = status.get("level") if status.get("level") in ("ok", "fail", "warn", "info", "none") else "none"
    return f'<span class="pill {level}">{esc(label or status.get("label") or level)}</span>'


def bool_pill(value: Any, yes: str, no: str, unknown: str = "unknown") -> str:
    if value is True:
        return pill({"level": "ok", "label": yes})
    if value is False:
        return pill({"level": "fail", "label": no})
    return pill({"level": "none", "label": unknown})


class Links:
    """Absolute links inside the plugin app (it is mounted under a prefix, e.g. /governance)."""

    def __init__(self, root: str):
        self.root = root.rstrip("/")

    def __call__(self, rel: str | None) -> str:
        if not rel:
            return ""
        return f"{self.root}/{quote(rel, safe='/:@-._~+')}"


# -- page frame ----------------------------------------------------------------------------


SECTIONS = (
    ("recovery-points", "Recovery points", ORDER_BACKUP),
    ("validation", "Validation", ORDER_BACKUP),
    ("purge-ledger", "Purge ledger", RETENTION_PURGE),
    ("drills", "Restore drills", RESTORE_DRILL),
    ("access-audit", "Access audit", ACCESS_AUDIT),
    ("runs", "DAG runs", None),
)


def page(
    title: str,
    body: str,
    *,
    link: Links,
    viewer: Viewer | None,
    generated_at: dt.datetime | None = None,
    overview: bool = False,
    footer: str = "",
) -> str:
    who = ""
    if viewer is not None:
        role = f" ({esc(viewer.role)})" if viewer.role else ""
        who = f"Signed in as <b>{esc(viewer.name)}</b>{role}"
        if generated_at is not None:
            who += f"<br>Generated {fmt_time(generated_at, with_seconds=True)}"
    tabs = [f'<a class="{"on" if overview else ""}" href="{link("")}/">Overview</a>']
    for anchor, label, dag in SECTIONS:
        if viewer is None or dag is None or viewer.can_read(dag):
            tabs.append(f'<a href="{link("")}/#{anchor}">{esc(label)}</a>')
    icon = ICON_SVG.format(color="#0b6bcb", fill="none")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{esc(title)} · Governance</title>
<style>{CSS}</style></head>
<body>
<header class="top">
  <div class="brand">
    <div><h1>{icon}{esc(PRODUCT)}</h1>
    <p>Evidence that the store's data-security policy is kept:
    backups, minimization, destruction, recovery, access.</p></div>
    <div class="who">{who}</div>
  </div>
  <nav class="sections">{"".join(tabs)}</nav>
</header>
<main>
{body}
</main>
<footer class="foot">{footer}Read-only view. Identifiers, counts, statuses and timings only: no customer data is
shown. Times in UTC (hover for Japan Standard Time).</footer>
</body></html>
"""


def card(anchor: str, title: str, body: str, hint: str = "", actions: str = "") -> str:
    right = f'<span class="hint">{hint}</span>' if hint else ""
    if actions:
        right += f'<span class="links">{actions}</span>'
    return (
        f'<section class="card" id="{esc(anchor)}"><header><h2>{esc(title)}</h2><div>{right}</div></header>'
        f"{body}</section>"
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], num: Iterable[int] = (), empty: str = "") -> str:
    numeric = set(num)
    rows = list(rows)
    if not rows:
        return f'<div class="empty">{esc(empty or "Nothing recorded yet.")}</div>'
    head = "".join(
        f'<th class="num">{esc(h)}</th>' if i in numeric else f"<th>{esc(h)}</th>" for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def kpi(title: str, big: str, sub: str, level: str) -> str:
    return (
        f'<div class="kpi {esc(level)}"><h3>{esc(title)}</h3>'
        f'<div class="big">{big}</div><div class="sub">{sub}</div></div>'
    )


def banner(level: str, title: str, text: str = "") -> str:
    return f'<div class="banner {esc(level)}"><div><b>{title}</b>{text}</div></div>'


# -- SVG trend chart -----------------------------------------------------------------------


def trend_chart(
    points: Sequence[Mapping[str, Any]], key: str, title: str, limit: float | None = None, limit_label: str = ""
) -> str:
    """A line chart of ``points[i][key]`` (seconds) in drill order, failed drills in red."""
    values = [(p, p.get(key)) for p in points if isinstance(p.get(key), (int, float))]
    if not values:
        return f'<div class="chart"><h4>{esc(title)}</h4><div class="empty">No drill has measured this yet.</div></div>'
    w, h, left, right, top, bottom = 560, 200, 78, 16, 14, 34
    pw, ph = w - left - right, h - top - bottom
    vmax = max(v for _p, v in values)
    if limit is not None:
        vmax = max(vmax, limit)
    ticks = duration_ticks(vmax)
    vmax = ticks[-1]
    n = len(values)

    def x(i: int) -> float:
        return left + (pw / 2 if n == 1 else pw * i / (n - 1))

    def y(v: float) -> float:
        return top + ph - ph * v / vmax

    parts = [
        f'<svg viewBox="0 0 {w} {h}" role="img" aria-label="{esc(title)}" xmlns="http://www.w3.org/2000/svg" '
        'font-family="system-ui,sans-serif" font-size="11">'
    ]
    for v in ticks:
        yy = y(v)
        parts.append(f'<line x1="{left}" x2="{w - right}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e3e7ec"/>')
        parts.append(f'<text x="{left - 8}" y="{yy + 4:.1f}" text-anchor="end" fill="#5f6b7a">{esc(_axis(v))}</text>')
    if limit is not None:
        ly = y(limit)
        parts.append(
            f'<line x1="{left}" x2="{w - right}" y1="{ly:.1f}" y2="{ly:.1f}" stroke="#b42318" '
            'stroke-dasharray="5 4" stroke-width="1.2"/>'
        )
        parts.append(
            f'<text x="{w - right}" y="{ly - 5:.1f}" text-anchor="end" fill="#b42318">{esc(limit_label)}</text>'
        )
    line = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, (_p, v) in enumerate(values))
    if n > 1:
        parts.append(f'<polyline points="{line}" fill="none" stroke="#0b6bcb" stroke-width="2"/>')
    for i, (p, v) in enumerate(values):
        bad = p.get("status") not in ("SUCCESSFUL",)
        color = "#b42318" if bad else "#0b6bcb"
        label = f"{fmt_plain_time(p.get('at'))}: {_axis(v)} ({p.get('status')})"
        parts.append(
            f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="4" fill="{color}" stroke="#fff" stroke-width="1.5">'
            f"<title>{esc(label)}</title></circle>"
        )
    first, last = values[0][0].get("at"), values[-1][0].get("at")
    parts.append(f'<text x="{left}" y="{h - 10}" fill="#5f6b7a">{esc(fmt_plain_time(first))}</text>')
    if n > 1:
        parts.append(
            f'<text x="{w - right}" y="{h - 10}" text-anchor="end" fill="#5f6b7a">{esc(fmt_plain_time(last))}</text>'
        )
    parts.append(f'<line x1="{left}" x2="{w - right}" y1="{top + ph}" y2="{top + ph}" stroke="#9aa5b1"/>')
    parts.append("</svg>")
    latest = values[-1][1]
    return (
        f'<div class="chart"><h4>{esc(title)}</h4>{"".join(parts)}'
        f'<div class="legend">{n} drill{"s" if n != 1 else ""} · latest {esc(_axis(latest))}'
        f"{' · dashed: ' + esc(limit_label) if limit is not None else ''}</div></div>"
    )


def fmt_plain_time(value: Any) -> str:
    parsed = parse_time(value)
    return parsed.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M") if parsed else "?"


def _axis(seconds: float) -> str:
    if seconds == 0:
        return "0"
    return fmt_duration(seconds).replace('<span class="muted">—</span>', "—")


#: axis steps that read as round durations: seconds, minutes, hours, days
_STEPS = (
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
    172800,
    604800,
    2592000,
)


def duration_ticks(vmax: float, most: int = 5) -> list[float]:
    """0, step, 2·step, ... covering ``vmax`` with at most ``most`` steps of a round duration."""
    vmax = max(vmax, 1.0)
    step = next((s for s in _STEPS if vmax / s <= most), None)
    if step is None:
        step = math.ceil(vmax / most / _STEPS[-1]) * _STEPS[-1]
    top = math.ceil(vmax * 1.05 / step) * step
    return [float(k * step) for k in range(int(top / step) + 1)]


# -- overview ------------------------------------------------------------------------------


def overview_page(d: Mapping[str, Any], *, link: Links, viewer: Viewer) -> str:
    kpis = []
    sections = []
    if viewer.can_read(ORDER_BACKUP):
        kpis.append(_kpi_points(d["recovery_points"]))
        kpis.append(_kpi_validation(d["validations"]))
        sections.append(points_section(d["recovery_points"], link, show_drills=viewer.can_read(RESTORE_DRILL)))
        sections.append(validation_section(d["validations"], link))
    if viewer.can_read(RETENTION_PURGE):
        kpis.append(_kpi_purge(d["purge_ledger"]))
        sections.append(purge_section(d["purge_ledger"], link))
    if viewer.can_read(RESTORE_DRILL):
        kpis.append(_kpi_drills(d["drills"]))
        sections.append(drills_section(d["drills"], d.get("policy") or {}, link))
    if viewer.can_read(ACCESS_AUDIT):
        kpis.append(_kpi_audits(d["audits"]))
        sections.append(audits_section(d["audits"], link))
    sections.append(runs_section(d["runs"], link))
    config = d.get("configuration") or {}
    notes = []
    if not (config.get("backup_root") or {}).get("available"):
        notes.append("the backup root (Variable <code>governance_backup_root</code>) is not set or does not exist yet")
    if not (config.get("report_root") or {}).get("available"):
        notes.append(
            "the report root (Variable <code>governance_report_root</code>) is not set, not a local path "
            "or does not exist yet"
        )
    intro = ""
    if notes:
        intro = banner(
            "warn",
            "Nothing to show yet for part of the view",
            "<br>" + "; ".join(notes) + ". Run <code>make demo</code> or wait for the nightly DAGs.",
        )
    body = intro + f'<div class="kpis">{"".join(kpis)}</div>' + "".join(sections)
    policy = d.get("policy") or {}
    footer = (
        f'Policy in force: SHA-256 <span class="hash">{esc(policy.get("sha256", "")[:16])}…</span>. '
        if policy.get("sha256")
        else ""
    )
    return page(
        "Overview",
        body,
        link=link,
        viewer=viewer,
        generated_at=parse_time(d.get("generated_at")),
        overview=True,
        footer=footer,
    )


def _kpi_points(points: Sequence[Mapping[str, Any]]) -> str:
    if not points:
        return kpi("Recovery points", "None yet", "no published recovery point", "warn")
    latest = points[0]
    ver = latest.get("verification") or {}
    verified = sum(1 for p in points if (p.get("verification") or {}).get("ok"))
    level = "ok" if ver.get("ok") else "fail" if ver.get("ok") is False else "warn"
    sub = (
        f'newest <a href="#rp-{esc(latest["id"])}">{esc(latest["id"])}</a>, '
        f"{esc(fmt_duration(latest.get('age_seconds')))} old · {verified}/{len(points)} verified"
    )
    return kpi("Recovery points", f"{len(points)} published", sub, level)


def _kpi_validation(validations: Sequence[Mapping[str, Any]]) -> str:
    if not validations:
        return kpi("Minimization gate", "No run yet", "no order_backup report", "none")
    v = validations[0]
    big = "Passed" if v.get("success") else "Failed" if v.get("success") is False else "Unknown"
    sub = f"{fmt_int(v.get('evaluated'))} expectations · {fmt_int(v.get('failed_count'))} failed · latest run"
    return kpi("Minimization gate", big, sub, v.get("level", "none"))


def _kpi_purge(p: Mapping[str, Any]) -> str:
    ver = p.get("verification")
    if not p.get("exists") or ver is None:
        return kpi("Purge ledger", "Empty", "no purge has run yet", "none")
    if ver.get("ok"):
        return kpi(
            "Purge ledger",
            "Chain intact",
            f"{fmt_int(ver.get('entries'))} entries · head #{esc(ver.get('head_seq'))}",
            "ok",
        )
    return kpi("Purge ledger", "Chain broken", "see the purge ledger below", "fail")


def _kpi_drills(dr: Mapping[str, Any]) -> str:
    if not dr.get("entries"):
        return kpi("Restore drills", "None yet", "no drill has run", "warn")
    last = dr["entries"][0]
    sub = (
        f"RTO {fmt_secs(last.get('rto_seconds'))} · "
        f"RPO {fmt_secs(last.get('rpo_seconds'))} · "
        f"{dr.get('total', 0)} in history"
    )
    return kpi("Last restore drill", esc(str(last.get("label", "")).capitalize()), sub, last.get("level", "none"))


def _kpi_audits(a: Mapping[str, Any]) -> str:
    if not a.get("periods"):
        return kpi("Access audit", "No report yet", "no audit period written", "none")
    p = a["periods"][0]
    sev = p.get("findings_by_severity") or {}
    big = f"{p.get('findings_total', 0)} finding{'s' if p.get('findings_total') != 1 else ''}"
    sub = f"{esc(p['period_label'])} · {sev.get('high', 0)} high · {sev.get('medium', 0)} medium"
    return kpi("Access audit", big, sub, p.get("level", "none"))


def points_section(points: Sequence[Mapping[str, Any]], link: Links, show_drills: bool = True) -> str:
    rows = []
    for p in points:
        pid = p["id"]
        if not p.get("readable", True):
            rows.append(
                [
                    f'<a id="rp-{esc(pid)}" href="{link(p["url"])}"><code>{esc(pid)}</code></a>',
                    f'<span class="pill fail">unreadable</span> <span class="small">{esc(p.get("error"))}</span>',
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                ]
            )
            continue
        ver = p.get("verification") or {}
        ver_cell = pill(ver)
        if ver.get("verified_at"):
            ver_cell += f'<div class="small muted">{fmt_time(ver["verified_at"])}</div>'
        if ver.get("error"):
            ver_cell += f'<div class="small">{esc(ver["error"])}</div>'
        drill = p.get("last_drill") if show_drills else None
        if drill:
            drill_cell = pill(drill)
            if drill.get("run_url"):
                drill_cell = f'<a href="{link(drill["run_url"])}">{drill_cell}</a>'
            drill_cell += (
                f'<div class="small muted">RTO {fmt_secs(drill.get("rto_seconds"))}'
                f" · RPO {fmt_secs(drill.get('rpo_seconds'))}</div>"
            )
        else:
            drill_cell = '<span class="muted">never drilled</span>' if show_drills else dash(None)
        tables = p.get("tables") or []
        tbl_rows = "".join(
            f'<tr><td>{esc(t["name"])}</td><td class="num">{fmt_int(t["rows"])}</td></tr>' for t in tables
        )
        tables_cell = (
            f"<details><summary>{len(tables)} tables · {fmt_int(p.get('rows'))} rows</summary>"
            f"<table><tbody>{tbl_rows}</tbody></table></details>"
        )
        pins = p.get("active_pins")
        rows.append(
            [
                f'<a id="rp-{esc(pid)}" href="{link(p["url"])}"><code>{esc(pid)}</code></a>',
                fmt_time(p.get("logical_date")),
                fmt_time(p.get("created_at"))
                + f'<div class="small muted">{esc(fmt_duration(p.get("age_seconds")))} ago</div>',
                fmt_bytes(p.get("size_bytes")),
                tables_cell,
                ver_cell,
                drill_cell,
                f'<span class="pill info">{pins} pinned</span>' if pins else '<span class="muted">none</span>',
            ]
        )
    body = table(
        ["Recovery point", "Logical date", "Created · age", "Size", "Tables", "Verification", "Last drill", "Pins"],
        rows,
        num=[3],
        empty="No recovery point has been published yet (order_backup has not run).",
    )
    hint = "Verification and drill results as recorded by the DAGs; signatures are checked by those runs."
    return card("recovery-points", "Recovery points", body, hint=hint)


def validation_section(validations: Sequence[Mapping[str, Any]], link: Links, this_run: bool = False) -> str:
    if not validations:
        return card(
            "validation",
            "Validation (minimization gate)",
            '<div class="empty">No order_backup run has reported a validation yet.</div>',
        )
    v = validations[0]
    outcome = "passed" if v.get("success") else "FAILED" if v.get("success") is False else "unknown"
    head = banner(
        v.get("level", "none"),
        f"Gate {outcome} in this run"
        if this_run
        else f'Latest gate {outcome} · <a href="{link(v["run_url"])}">{esc(v["run_id"])}</a>',
        '<div class="small">'
        + (
            ""
            if this_run
            else f"Recovery point <code>{esc(v.get('recovery_point_id'))}</code> · "
            f"logical date {fmt_time(v.get('logical_date'))} · "
        )
        + f"engine {esc(v.get('engine') or '—')} · "
        f"{fmt_int(v.get('evaluated'))} expectations evaluated, {fmt_int(v.get('failed_count'))} failed</div>",
    )
    trows = [
        [esc(t["name"]), fmt_int(t["evaluated"]), fmt_int(t["failed"]), bool_pill(t["success"], "passed", "failed")]
        for t in v.get("tables") or []
    ]
    per_table = table(["Table", "Expectations", "Failed", "Result"], trows, num=[1, 2])
    frows = [
        [
            esc(f["table"]),
            dash(f["column"]),
            f"<code>{esc(f['expectation'])}</code>",
            dash(f["stage"]),
            fmt_int(f["unexpected_count"]),
        ]
        for f in v.get("failed") or []
    ]
    failed = table(
        ["Table", "Column", "Expectation", "Stage", "Unexpected rows"],
        frows,
        num=[4],
        empty="Every expectation passed.",
    )
    extra = v.get("extraneous_columns") or {}
    extra_html = ""
    if extra:
        items = "; ".join(f"{esc(t)}: {', '.join(f'<code>{esc(c)}</code>' for c in cols)}" for t, cols in extra.items())
        extra_html = (
            f'<p class="small">Columns present in the store but not allowed by the policy (never copied): {items}</p>'
        )
    history = ""
    if len(validations) > 1:
        hrows = [
            [
                f'<a href="{link(x["run_url"])}">{esc(x["run_id"])}</a>',
                fmt_time(x.get("logical_date")),
                pill(x),
                fmt_int(x.get("failed_count")),
            ]
            for x in validations[1:]
        ]
        history = '<h4 style="margin:16px 0 6px">Earlier runs</h4>' + table(
            ["Run", "Logical date", "Gate", "Failed"], hrows, num=[3]
        )
    docs = (
        f'<a class="btn primary" href="{link(v["data_docs_url"])}">Open GX Data Docs</a>'
        if v.get("data_docs_url")
        else ""
    )
    body = (
        f'<div class="body">{head}<div class="grid2"><div>{per_table}</div><div>{failed}</div></div>'
        f"{extra_html}{history}</div>"
    )
    return card(
        "validation",
        "Validation (minimization gate)",
        body,
        hint="Great Expectations results: counts and keys only, never values.",
        actions=docs,
    )


def purge_section(p: Mapping[str, Any], link: Links) -> str:
    ver = p.get("verification")
    if not p.get("exists"):
        return card("purge-ledger", "Purge ledger", '<div class="empty">No purge has been recorded yet.</div>')
    if ver and ver.get("ok"):
        extra = []
        if ver.get("anchors"):
            extra.append(f"{ver['anchors']} head(s) recorded by run reports still reached")
        if ver.get("tombstone_files") is not None:
            extra.append(f"{ver['tombstone_files']} tombstone file(s) match their SHA-256")
        if ver.get("incomplete_attempts"):
            extra.append(
                f"{len(ver['incomplete_attempts'])} attempt(s) began but did not complete (a rerun finishes them)"
            )
        head = banner(
            "ok",
            f"Hash chain verified: {fmt_int(ver.get('entries'))} entries, head #{esc(ver.get('head_seq'))} "
            f"{short_hash(ver.get('head_hash'), 16)}",
            f'<div class="small">{esc("; ".join(extra))}. Checked {fmt_time(ver.get("checked_at"), True)}.</div>',
        )
    else:
        head = banner(
            "fail",
            "The purge ledger does NOT verify: treat as an incident and escalate to compliance",
            f'<div class="small">{esc((ver or {}).get("error") or p.get("error"))}</div>',
        )
    rows = []
    for e in p.get("entries") or []:
        mode = (
            '<span class="pill info">dry run</span>'
            if e.get("dry_run")
            else '<span class="pill none">live</span>'
            if e.get("dry_run") is False
            else dash(None)
        )
        prot = ", ".join(f"{esc(k)} {v}" for k, v in (e.get("protected") or {}).items() if v)
        keys = e.get("shredded_keys") or sum(x.get("keys", 0) for x in e.get("epochs") or [])
        rows.append(
            [
                str(e.get("seq") or "?"),
                fmt_time(e.get("at")),
                f"<code>{esc(e.get('event'))}</code>",
                _run_link(e.get("run_id"), e.get("run_url"), link),
                f"<code>{esc(e['recovery_point_id'])}</code>" if e.get("recovery_point_id") else dash(None),
                mode,
                fmt_int(e.get("rows")) if e.get("counts") else dash(None),
                prot or dash(None),
                fmt_int(keys) if keys else dash(None),
                short_hash(e.get("hash")),
            ]
        )
    shown = len(p.get("entries") or [])
    hint = f"newest first · {shown} of {p.get('total', shown)} entries" if p.get("total") else ""
    body = f'<div class="body">{head}</div>' + table(
        ["#", "Recorded", "Event", "Run", "Recovery point", "Mode", "Rows", "Protected", "Keys shredded", "Hash"],
        rows,
        num=[0, 6, 8],
    )
    return card("purge-ledger", "Purge ledger", body, hint=hint)


def drills_section(dr: Mapping[str, Any], policy: Mapping[str, Any], link: Links) -> str:
    if not dr.get("exists"):
        return card("drills", "Restore drills", '<div class="empty">No restore drill has run yet.</div>')
    ver = dr.get("verification") or {}
    if ver.get("ok"):
        head = banner(
            "ok",
            f"Drill history verified: {fmt_int(ver.get('entries'))} entries, hash chain intact",
            f' <span class="small">head #{esc(ver.get("head_seq"))} {short_hash(ver.get("head_hash"), 16)}</span>',
        )
    else:
        head = banner("fail", "The drill history does NOT verify", f'<div class="small">{esc(ver.get("error"))}</div>')
    limit = policy.get("drill_timeout_seconds")
    deadline = "policy drill deadline" if limit else ""
    trend = dr.get("trend") or []
    charts = (
        '<div class="charts">'
        + trend_chart(trend, "rto_seconds", "RTO: restore and verification time", limit, deadline)
        + trend_chart(trend, "rpo_seconds", "RPO: age of the recovery point at restore")
        + "</div>"
    )
    rows = []
    for e in dr.get("entries") or []:
        failure = e.get("failure")
        status = pill(e)
        if failure:
            status += f'<div class="small">{esc(failure.get("step"))}: {esc(failure.get("error"))}</div>'
        rows.append(
            [
                str(e.get("seq") or "?"),
                fmt_time(e.get("at")),
                _run_link(e.get("run_id"), e.get("run_url"), link),
                f"<code>{esc(e.get('recovery_point_id'))}</code>" if e.get("recovery_point_id") else dash(None),
                status,
                fmt_secs(e.get("rto_seconds")),
                fmt_secs(e.get("rpo_seconds")),
                fmt_int(e.get("rows_restored")),
                bool_pill(e.get("checksums_ok"), "match", "mismatch", "—"),
                dash(e.get("triggered_by")),
            ]
        )
    body = f'<div class="body">{head}{charts}</div>' + table(
        [
            "#",
            "Finished",
            "Run",
            "Recovery point",
            "Status",
            "RTO",
            "RPO",
            "Rows restored",
            "Checksums",
            "Triggered by",
        ],
        rows,
        num=[0, 5, 6, 7],
    )
    return card("drills", "Restore drills", body, hint=f"newest first · {plural(dr.get('total', 0), 'drill')}")


def audits_section(a: Mapping[str, Any], link: Links) -> str:
    if not a.get("exists"):
        return card("access-audit", "Access audit", '<div class="empty">No access audit has run yet.</div>')
    ev = a.get("evidence")
    if ev is None:
        head = ""
    elif ev.get("ok"):
        head = banner("ok", f"Evidence log verified: {fmt_int(ev.get('entries'))} report(s) recorded, chain intact")
    else:
        head = banner(
            "fail", "The audit evidence log does NOT verify", f'<div class="small">{esc(ev.get("error"))}</div>'
        )
    rows = []
    for p in a.get("periods") or []:
        sev = p.get("findings_by_severity") or {}
        sev_txt = " · ".join(f"{esc(k)} {v}" for k, v in sorted(sev.items(), key=lambda kv: _sev_rank(kv[0])) if v)
        links = []
        if p.get("report_url"):
            links.append(f'<a href="{link(p["report_url"])}">Report</a>')
        if p.get("csv_url"):
            links.append(f'<a href="{link(p["csv_url"])}">Findings CSV</a>')
        integrity = p.get("integrity") or {}
        if any(v is False for v in integrity.values()):
            links.append('<span class="pill fail">file altered</span>')
        dates = p.get("start_date") or ""
        if p.get("end_date") and p.get("end_date") != p.get("start_date"):
            dates += f" – {p['end_date']}"
        rows.append(
            [
                f"<b>{esc(p['kind'])}</b> <code>{esc(p['period'])}</code>",
                f'{esc(dates)} <span class="small muted">{esc(p.get("timezone") or "")}</span>',
                fmt_int(p.get("event_count")),
                fmt_int(p.get("denied_count")),
                fmt_int(p.get("outside_business_hours_count")),
                fmt_int(p.get("staff_count")),
                f'{fmt_int(p.get("findings_total"))}<div class="small muted">{sev_txt}</div>'
                if sev_txt
                else fmt_int(p.get("findings_total")),
                pill(p),
                f'<span class="links">{"".join(links)}</span>',
            ]
        )
    body = (f'<div class="body">{head}</div>' if head else "") + table(
        ["Period", "Dates", "Events", "Denied", "Off-hours", "Staff", "Findings", "Status", "Reports"],
        rows,
        num=[2, 3, 4, 5],
        empty="No audit period has been reported yet.",
    )
    return card(
        "access-audit",
        "Access audit",
        body,
        hint="Staff access to customer data, by period; reports name staff ids, never customers.",
    )


def _sev_rank(sev: str) -> int:
    return {"high": 0, "medium": 1, "low": 2}.get(sev, 3)


def runs_section(runs: Sequence[Mapping[str, Any]], link: Links, title: str = "DAG runs") -> str:
    rows = []
    for r in runs:
        links = [f'<a href="{link(r["url"])}">Report</a>']
        if r.get("report_html_url"):
            links.append(f'<a href="{link(r["report_html_url"])}">Full report</a>')
        if r.get("data_docs_url"):
            links.append(f'<a href="{link(r["data_docs_url"])}">Data Docs</a>')
        rows.append(
            [
                esc(r["dag_title"]),
                f'<a href="{link(r["url"])}"><code>{esc(r["run_id"])}</code></a>',
                fmt_time(r.get("logical_date")),
                fmt_time(r.get("written_at")),
                pill(r),
                _facts_line(r),
                f'<span class="links">{"".join(links)}</span>',
            ]
        )
    body = table(
        ["DAG", "Run", "Logical date", "Report written", "Outcome", "Key facts", "Reports"],
        rows,
        empty="No governance DAG run has written a report yet.",
    )
    return card("runs", title, body, hint="Every run of the governance DAGs, newest first; each links to its report.")


def _facts_line(r: Mapping[str, Any]) -> str:
    f = r.get("facts") or {}
    dag = r["dag_id"]
    bits: list[str] = []
    if dag == ORDER_BACKUP:
        if r.get("recovery_point_id"):
            bits.append(f"<code>{esc(r['recovery_point_id'])}</code>")
        bits += [f"{fmt_int(f.get('rows'))} rows", fmt_bytes(f.get("bytes"))]
        if f.get("already_published"):
            bits.append("already published")
    elif dag == RETENTION_PURGE:
        bits += [f"{fmt_int(f.get('rows_purged'))} rows purged", f"{fmt_int(f.get('shredded_keys'))} keys shredded"]
        if f.get("dry_run"):
            bits = [f"{fmt_int(f.get('rows_due'))} rows due (dry run)"]
    elif dag == RESTORE_DRILL:
        bits += [
            f"RTO {fmt_secs(f.get('rto_seconds'))}",
            f"RPO {fmt_secs(f.get('rpo_seconds'))}",
            f"{fmt_int(f.get('rows_restored'))} rows",
        ]
    elif dag == ACCESS_AUDIT:
        bits += [
            f"{fmt_int(f.get('periods'))} period(s)",
            f"{fmt_int(f.get('event_count'))} events",
            f"alerts {esc(f.get('alerts') or '—')}",
        ]
    return '<span class="small">' + " · ".join(bits) + "</span>"


def _run_link(run_id: Any, url: str | None, link: Links) -> str:
    """A run id, linked to its report page when the run wrote one (``url`` from the data layer)."""
    if not run_id:
        return dash(None)
    code = f'<code class="small">{esc(run_id)}</code>'
    return f'<a href="{link(url)}">{code}</a>' if url else code


# -- detail pages --------------------------------------------------------------------------


def facts(items: Iterable[tuple[str, str]]) -> str:
    return '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def point_page(p: Mapping[str, Any], *, link: Links, viewer: Viewer, generated_at: dt.datetime) -> str:
    crumbs = (
        f'<p class="crumbs"><a href="{link("")}/">Overview</a> › '
        f'<a href="{link("")}/#recovery-points">Recovery points</a> › {esc(p["id"])}</p>'
    )
    if not p.get("readable", True):
        body = crumbs + banner(
            "fail", "This recovery point cannot be read", f'<div class="small">{esc(p.get("error"))}</div>'
        )
        return page(p["id"], body, link=link, viewer=viewer, generated_at=generated_at)
    ver = p.get("verification") or {}
    drill = p.get("last_drill") if viewer.can_read(RESTORE_DRILL) else None
    sig = p.get("signature") or {}
    left = facts(
        [
            ("Logical date", fmt_time(p.get("logical_date"))),
            ("Created", f"{fmt_time(p.get('created_at'), True)} ({esc(fmt_duration(p.get('age_seconds')))} ago)"),
            ("Snapshot started", fmt_time(p.get("snapshot_started_at"), True)),
            ("Newest source change", fmt_time(p.get("watermark"), True)),
            ("Written by run", _run_link(p.get("dag_run_id"), p.get("dag_run_url"), link)),
            (
                "Size",
                f"{fmt_bytes(p.get('size_bytes'))} in {fmt_int(p.get('files'))} files, "
                f"{fmt_int(p.get('partitions'))} partitions",
            ),
            ("Rows", fmt_int(p.get("rows"))),
            ("Encrypted", bool_pill(p.get("encrypted"), "yes (Parquet modular encryption)", "NO")),
            (
                "Signature",
                f"{esc(sig.get('algorithm') or '—')}, key <code>{esc(sig.get('key_id') or '—')}</code>"
                f" (public key {esc(sig.get('public_key_sha256_16') or '—')})",
            ),
            ("Validation at backup", bool_pill(p.get("validation_success"), "passed", "failed")),
            ("Policy", short_hash(p.get("policy_sha256"), 16)),
        ]
    )
    ver_items = [("Status", pill(ver))]
    if ver.get("verified_at"):
        ver_items += [
            ("Verified", fmt_time(ver["verified_at"], True)),
            ("By run", esc(ver.get("by") or "—")),
            ("Files checked", f"{fmt_int(ver.get('files'))} ({fmt_bytes(ver.get('bytes'))})"),
        ]
    if ver.get("error"):
        ver_items.append(("Error", esc(ver["error"])))
    drill_items: list[tuple[str, str]] = [
        ("Status", pill(drill) if drill else '<span class="muted">never drilled</span>')
    ]
    if drill:
        drill_items += [
            ("Run", _run_link(drill.get("run_id"), drill.get("run_url"), link)),
            ("Finished", fmt_time(drill.get("finished_at"), True)),
            ("RTO", fmt_secs(drill.get("rto_seconds"))),
            ("RPO", fmt_secs(drill.get("rpo_seconds"))),
            ("Rows restored", fmt_int(drill.get("rows_restored"))),
        ]
        if drill.get("failure"):
            drill_items.append(("Failure", esc(drill["failure"])))
    drill_items.append(("Pins held", fmt_int(p.get("active_pins"))))
    rows = [
        [
            esc(t["name"]),
            fmt_int(t["rows"]),
            fmt_bytes(t["bytes"]),
            fmt_int(t["files"]),
            fmt_int(t["partitions"]),
            fmt_int(t["columns"]),
            ", ".join(f"<code>{esc(c)}</code>" for c in t.get("extra_columns_ignored") or []) or dash(None),
        ]
        for t in p.get("tables_detail") or []
    ]
    body = (
        crumbs
        + card("point", f"Recovery point {p['id']}", f'<div class="body">{left}</div>')
        + '<div class="grid2">'
        + card("verification", "Last verification", f'<div class="body">{facts(ver_items)}</div>')
        + card("drill", "Last restore drill", f'<div class="body">{facts(drill_items)}</div>')
        + "</div>"
        + card(
            "tables",
            "Tables",
            table(
                ["Table", "Rows", "Size", "Files", "Partitions", "Columns", "Store columns not copied"],
                rows,
                num=[1, 2, 3, 4, 5],
            ),
        )
    )
    return page(p["id"], body, link=link, viewer=viewer, generated_at=generated_at)


def run_page(r: Mapping[str, Any], *, link: Links, viewer: Viewer, generated_at: dt.datetime) -> str:
    dag = r["dag_id"]
    crumbs = (
        f'<p class="crumbs"><a href="{link("")}/">Overview</a> › <a href="{link("")}/#runs">DAG runs</a> › '
        f"{esc(DAG_TITLES[dag])} › {esc(r['run_id'])}</p>"
    )
    actions = []
    if r.get("report_html_url"):
        actions.append(f'<a class="btn primary" href="{link(r["report_html_url"])}">Open the full report</a>')
    if r.get("data_docs_url"):
        actions.append(f'<a class="btn" href="{link(r["data_docs_url"])}">GX Data Docs</a>')
    head = facts(
        [
            ("DAG", f"<code>{esc(dag)}</code> ({esc(DAG_TITLES[dag])})"),
            ("Run", f"<code>{esc(r['run_id'])}</code>"),
            ("Logical date", fmt_time(r.get("logical_date"), True)),
            ("Report written", fmt_time(r.get("written_at"), True)),
            ("Outcome", pill(r)),
        ]
        + (
            [
                (
                    "Recovery point",
                    f'<a href="{link("recovery-points/" + r["recovery_point_id"])}"><code>'
                    f"{esc(r['recovery_point_id'])}</code></a>",
                )
            ]
            if r.get("recovery_point_id")
            else []
        )
    )
    detail = r.get("detail") or {}
    sections = [card("run", f"{DAG_TITLES[dag]} run", f'<div class="body">{head}</div>', actions=" ".join(actions))]
    sections += DETAIL_RENDERERS[dag](detail, link)
    return page(
        f"{DAG_TITLES[dag]} {r['run_id']}",
        crumbs + "".join(sections),
        link=link,
        viewer=viewer,
        generated_at=generated_at,
    )


def _backup_detail(d: Mapping[str, Any], link: Links) -> list[str]:
    out = []
    rows = [
        [esc(t["name"]), fmt_int(t["rows"]), fmt_bytes(t["bytes"]), fmt_int(t["files"])] for t in d.get("tables") or []
    ]
    out.append(card("tables", "Tables backed up", table(["Table", "Rows", "Size", "Files"], rows, num=[1, 2, 3])))
    ver = d.get("verification")
    if ver:
        items = [
            ("Status", pill(ver)),
            ("Verified", fmt_time(ver.get("verified_at"), True)),
            ("Files checked", f"{fmt_int(ver.get('files'))} ({fmt_bytes(ver.get('bytes'))})"),
        ]
        if ver.get("error"):
            items.append(("Error", esc(ver["error"])))
        out.append(card("verification", "Verification of the new point", f'<div class="body">{facts(items)}</div>'))
    v = d.get("validation")
    if v:
        out.append(validation_section([v], link, this_run=True))
    masked = d.get("masked") or {}
    viol = d.get("violations") or []
    extra = d.get("extraneous_columns") or {}
    items = [
        ("Card numbers masked", ", ".join(f"{esc(k)}: {v}" for k, v in masked.items()) or "none"),
        (
            "Store columns not copied",
            "; ".join(f"{esc(t)}: {', '.join(map(esc, c))}" for t, c in extra.items()) or "none",
        ),
        (
            "Content findings",
            "; ".join(f"{esc(x['table'])}.{esc(x['column'])} {esc(x['rule'])} × {x['count']}" for x in viol) or "none",
        ),
        (
            "Expired recovery points",
            ", ".join(f"<code>{esc(p)}</code>" for p in d.get("expired_points") or [] if p) or "none",
        ),
    ]
    out.append(card("minimization", "Minimization", f'<div class="body">{facts(items)}</div>'))
    return out


def _purge_detail(d: Mapping[str, Any], link: Links) -> list[str]:
    rows = [[esc(t["name"]), fmt_int(t["due"]), fmt_int(t["purged"])] for t in d.get("tables") or []]
    guard = d.get("guard") or {}
    ledger = d.get("ledger") or {}
    items = [
        ("Guard (newest verified point)", bool_pill(guard.get("ok"), "passed", "failed", "not checked")),
        (
            "Protected (not purged)",
            ", ".join(f"{esc(k)}: {v}" for k, v in (d.get("protected") or {}).items()) or "none",
        ),
        (
            "Changed since plan (skipped)",
            ", ".join(f"{esc(k)}: {v}" for k, v in (d.get("skipped_changed_since_plan") or {}).items()) or "none",
        ),
        ("Keys shredded", ", ".join(f"<code>{esc(k)}</code>" for k in d.get("shredded_keys") or []) or "none"),
        (
            "Keys a live run would shred",
            ", ".join(f"<code>{esc(k)}</code>" for k in d.get("would_shred") or []) or "none",
        ),
        ("Batches", fmt_int(d.get("batches"))),
        ("Plan / delete time", f"{fmt_secs(d.get('plan_seconds'))} / {fmt_secs(d.get('delete_seconds'))}"),
        ("Ledger head written", f"#{esc(ledger.get('head_seq'))} {short_hash(ledger.get('head_hash'), 16)}"),
        ("Ledger check at the end of the run", bool_pill(ledger.get("ok"), "verified", "broken", "not recorded")),
    ]
    return [
        '<div class="grid2">',
        card("tables", "Rows due and purged", table(["Table", "Due", "Purged"], rows, num=[1, 2])),
        card("evidence", "Evidence", f'<div class="body">{facts(items)}</div>'),
        "</div>",
    ]


def _drill_detail(d: Mapping[str, Any], link: Links) -> list[str]:
    failure = d.get("failure")
    items = [
        ("Verification mode", esc(d.get("verification_mode") or "—")),
        ("Started / finished", f"{fmt_time(d.get('started_at'), True)} / {fmt_time(d.get('finished_at'), True)}"),
        ("Deadline", f"{d['timeout_minutes']:g} min" if d.get("timeout_minutes") is not None else dash(None)),
        ("Point signature", bool_pill(d.get("signature_ok"), "verified", "FAILED", "not checked")),
        ("Files verified", f"{fmt_int(d.get('files_verified'))} ({fmt_bytes(d.get('bytes_verified'))})"),
        ("Restore time", fmt_secs(d.get("restore_seconds"))),
        ("Shredded partitions skipped", fmt_int(d.get("shredded_partitions_skipped"))),
        ("History entry", f"#{esc(d.get('history_seq'))} {short_hash(d.get('history_hash'), 16)}"),
    ]
    if failure:
        items.append(
            ("Failure", f"{esc(failure.get('step'))} ({esc(failure.get('status'))}): {esc(failure.get('error'))}")
        )
    rows = [
        [
            esc(t["name"]),
            fmt_int(t["expected_rows"]),
            fmt_int(t["restored_rows"]),
            pill(
                {
                    "level": "ok" if t.get("checksums") == "ok" else "warn" if t.get("checksums") else "none",
                    "label": t.get("checksums") or "—",
                }
            ),
            dash(t.get("validation")),
            fmt_int(t.get("dropped_by_purge_tombstones")),
            fmt_int(t.get("skipped_shredded_rows")),
        ]
        for t in d.get("tables") or []
    ]
    return [
        card("drill", "Drill", f'<div class="body">{facts(items)}</div>'),
        card(
            "tables",
            "Tables restored",
            table(
                [
                    "Table",
                    "Expected rows",
                    "Restored rows",
                    "Checksums",
                    "Validation",
                    "Dropped by purge tombstones",
                    "Skipped (shredded)",
                ],
                rows,
                num=[1, 2, 5, 6],
            ),
        ),
    ]


def _audit_detail(d: Mapping[str, Any], link: Links) -> list[str]:
    rows = []
    for p in d.get("periods") or []:
        sev = " · ".join(f"{esc(k)} {v}" for k, v in (p.get("findings_by_severity") or {}).items() if v)
        links = []
        if p.get("report_url"):
            links.append(f'<a href="{link(p["report_url"])}">Report</a>')
        if p.get("csv_url"):
            links.append(f'<a href="{link(p["csv_url"])}">Findings CSV</a>')
        rows.append(
            [
                f"<code>{esc(p['label'])}</code>",
                fmt_int(p.get("event_count")),
                fmt_int(p.get("denied_count")),
                fmt_int(p.get("findings_total")),
                sev or dash(None),
                f'<span class="links">{"".join(links)}</span>',
            ]
        )
    alerts = d.get("alerts") or {}
    items = [
        ("Alert status", esc(alerts.get("status") or "—")),
        ("High findings", fmt_int(alerts.get("high_findings"))),
        ("Sent now / before", f"{fmt_int(alerts.get('sent'))} / {fmt_int(alerts.get('already_sent'))}"),
        ("Not sent / failed", f"{fmt_int(alerts.get('not_sent'))} / {fmt_int(alerts.get('failed'))}"),
    ]
    return [
        card(
            "periods",
            "Periods audited",
            table(["Period", "Events", "Denied", "Findings", "By severity", "Reports"], rows, num=[1, 2, 3]),
        ),
        card("alerts", "Alerts", f'<div class="body">{facts(items)}</div>'),
    ]


DETAIL_RENDERERS = {
    ORDER_BACKUP: _backup_detail,
    RETENTION_PURGE: _purge_detail,
    RESTORE_DRILL: _drill_detail,
    ACCESS_AUDIT: _audit_detail,
}


def data_docs_page(d: Mapping[str, Any], *, link: Links, viewer: Viewer, generated_at: dt.datetime) -> str:
    crumbs = (
        f'<p class="crumbs"><a href="{link("")}/">Overview</a> › <a href="{link("")}/#validation">Validation</a> › '
        f'<a href="{link(d["run_url"])}">{esc(d["run_id"])}</a> › Data Docs</p>'
    )
    rows = []
    for p in d.get("pages") or []:
        rows.append(
            [
                esc(p["table"]),
                esc(p["stage"]),
                bool_pill(p.get("table_success"), "passed", "failed"),
                f'<a href="{link(p["validation_url"])}">Validation result</a>'
                if p.get("validation_url")
                else dash(None),
                f'<a href="{link(p["suite_url"])}">Expectation suite</a>' if p.get("suite_url") else dash(None),
            ]
        )
    note = (
        '<div class="body small muted">The pages below are Great Expectations\' own Data Docs, as the run wrote them. '
        "They are shown without the scripts and style sheets they would fetch from public CDNs: nothing is "
        "loaded from outside. GX's start page draws its lists with those scripts, so this page lists the "
        f'documents instead (<a href="{link(d["gx_index_url"])}">GX start page</a>). '
        "Stage <i>source</i> checks the rows as read from the store, <i>backup</i> the rows as written to the "
        "recovery point.</div>"
    )
    body = crumbs + card(
        "data-docs",
        "Great Expectations Data Docs",
        note + table(["Table", "Stage", "Table result", "Validation", "Suite"], rows, empty="No Data Docs pages."),
    )
    return page("Data Docs", body, link=link, viewer=viewer, generated_at=generated_at)


def message_page(
    title: str, text: str, *, link: Links, viewer: Viewer | None, level: str = "warn", action: str = ""
) -> str:
    body = banner(level, esc(title), f'<div class="small">{text}</div>{action}')
    return page(title, body, link=link, viewer=viewer)
