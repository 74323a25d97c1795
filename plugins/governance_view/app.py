"""The Governance view's FastAPI app, mounted by the Airflow api-server under ``/governance``.

Pages (server-rendered HTML, no script) and a JSON API over the same read-only data layer:

=====================================  ===================================================
``/``                                  overview: recovery points, validation, purge
                                       ledger, drills with the RTO/RPO trend, audits, runs
``/recovery-points/{id}``              one recovery point
``/runs/{dag_id}/{run_id}``            one DAG run's report (also the "Governance report"
                                       tab of every DAG run in the Airflow UI)
``/files/{dag_id}/{run}/report.html``  the report a run rendered
``/data-docs/{run}``                   an order_backup run's Great Expectations Data Docs
``/files/order_backup/{run}/data-docs/...``  the Data Docs files themselves
``/audits/{kind}/{period}/{file}``     an access-audit period's report.html / findings.csv
``/api/...``                           the same data as JSON
``/static/governance.svg``             the navigation icon (public: it holds no data)
=====================================  ===================================================

Every other route requires an authenticated Airflow user allowed to read the view
(:mod:`.auth`); each section and file also requires read access to the DAG that wrote it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import render
from .auth import Viewer, authenticate, authorize
from .data import (
    ACCESS_AUDIT,
    DAGS,
    ORDER_BACKUP,
    RESTORE_DRILL,
    RETENTION_PURGE,
    GovernanceData,
    Sources,
)

#: what the view's own pages may load: nothing but their inline styles and same-origin images
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'self'; "
    "base-uri 'none'; form-action 'none'"
)
#: reports rendered by the DAGs are self-contained (inline CSS and SVG, no script)
REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; base-uri 'none'; "
    "form-action 'none'"
)
#: Great Expectations Data Docs: their own style sheets, fonts and images; no script at all (they
#: would need jQuery and Bootstrap from public CDNs, which stay blocked with everything external)
DOCS_CSP = (
    "default-src 'self'; script-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'none'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)


def create_app() -> FastAPI:
    app = FastAPI(
        title="Lomevexi Governance view",
        description="Read-only governance evidence for the Airflow UI",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response: Response = await call_next(request)
        headers = response.headers
        headers.setdefault("Content-Security-Policy", PAGE_CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_html(request):
            link = _links(request)
            titles = {
                401: "Sign in to Airflow to open the Governance view",
                403: "Your Airflow account may not open this page",
                404: "Not found",
            }
            action = ""
            if exc.status_code == 401:
                action = '<p><a class="btn primary" href="/" target="_top">Sign in</a></p>'
            return HTMLResponse(
                render.message_page(
                    titles.get(exc.status_code, "Request refused"),
                    render.esc(exc.detail),
                    link=link,
                    viewer=None,
                    level="fail" if exc.status_code != 404 else "warn",
                    action=action,
                ),
                status_code=exc.status_code,
                headers=getattr(exc, "headers", None),
            )
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    # -- public ----------------------------------------------------------------------------

    @app.get("/static/governance.svg", include_in_schema=False)
    def icon(dark: bool = False) -> Response:
        if dark:
            svg = render.ICON_SVG.format(color="#e2e8f0", fill="#1e293b")
        else:
            svg = render.ICON_SVG.format(color="#334155", fill="#ffffff")
        return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"})

    # -- pages -----------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    def overview_page(request: Request, viewer: ViewerDep) -> HTMLResponse:
        data = _data()
        return HTMLResponse(render.overview_page(_overview(data, viewer), link=_links(request), viewer=viewer))

    @app.get("/recovery-points/{point_id}", response_class=HTMLResponse)
    def point_page(request: Request, point_id: str, viewer: ViewerDep) -> HTMLResponse:
        _require(viewer, ORDER_BACKUP)
        data = _data()
        point = data.recovery_point(point_id)
        if point is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"No recovery point {point_id!r}")
        return HTMLResponse(render.point_page(point, link=_links(request), viewer=viewer, generated_at=data.now))

    @app.get("/runs/{dag_id}/{run_id:path}", response_class=HTMLResponse)
    def run_page(request: Request, dag_id: str, run_id: str, viewer: ViewerDep) -> HTMLResponse:
        if dag_id not in DAGS:
            return HTMLResponse(
                render.message_page(
                    "No governance report for this DAG",
                    f"<code>{render.esc(dag_id)}</code> is not one of the governance DAGs "
                    f"({', '.join(DAGS)}); its runs write no governance report.",
                    link=_links(request),
                    viewer=viewer,
                    level="none",
                ),
                status_code=404,
            )
        _require(viewer, dag_id)
        data = _data()
        run = data.run(dag_id, run_id)
        if run is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                f"Run {run_id!r} of {dag_id} has written no report (yet): it may still be running, "
                "or it failed before its report task.",
            )
        return HTMLResponse(render.run_page(run, link=_links(request), viewer=viewer, generated_at=data.now))

    @app.get("/data-docs/{folder}", response_class=HTMLResponse)
    def data_docs_index(request: Request, folder: str, viewer: ViewerDep) -> HTMLResponse:
        _require(viewer, ORDER_BACKUP)
        data = _data()
        docs = data.data_docs_pages(folder)
        if docs is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"No Data Docs for order_backup run {folder!r}")
        return HTMLResponse(render.data_docs_page(docs, link=_links(request), viewer=viewer, generated_at=data.now))

    # -- report files (read-only, allow-listed names, safe path joins) -------------------

    @app.get("/files/{dag_id}/{folder}/report.html")
    def run_report_html(dag_id: str, folder: str, viewer: ViewerDep) -> Response:
        _require(viewer, dag_id)
        found = _data().run_file(dag_id, folder, "report.html")
        return _file(found, REPORT_CSP)

    @app.get("/files/order_backup/{folder}/data-docs/{rel:path}")
    def data_docs(folder: str, rel: str, viewer: ViewerDep) -> Response:
        _require(viewer, ORDER_BACKUP)
        found = _data().data_docs_file(folder, rel)
        return _file(found, DOCS_CSP)

    @app.get("/audits/{kind}/{period}/{name}")
    def audit_file(kind: str, period: str, name: str, viewer: ViewerDep) -> Response:
        _require(viewer, ACCESS_AUDIT)
        found = _data().audit_file(kind, period, name)
        disposition = f'attachment; filename="access-audit-{kind}-{period}-{name}"' if name.endswith(".csv") else None
        return _file(found, REPORT_CSP, disposition)

    # -- JSON API --------------------------------------------------------------------------

    @app.get("/api/me")
    def api_me(viewer: ViewerDep) -> dict[str, Any]:
        return {"user": viewer.name, "role": viewer.role, "readable_dags": sorted(viewer.readable_dags)}

    @app.get("/api/overview")
    def api_overview(viewer: ViewerDep) -> dict[str, Any]:
        return _overview(_data(), viewer)

    @app.get("/api/recovery-points")
    def api_points(viewer: ViewerDep) -> dict[str, Any]:
        _require(viewer, ORDER_BACKUP)
        data = _data()
        return {"generated_at": data.now.isoformat(), "recovery_points": _points(data, viewer)}

    @app.get("/api/recovery-points/{point_id}")
    def api_point(point_id: str, viewer: ViewerDep) -> dict[str, Any]:
        _require(viewer, ORDER_BACKUP)
        point = _data().recovery_point(point_id)
        if point is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"No recovery point {point_id!r}")
        if not viewer.can_read(RESTORE_DRILL):
            point["last_drill"] = None
        return point

    @app.get("/api/validations")
    def api_validations(viewer: ViewerDep, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> dict[str, Any]:
        _require(viewer, ORDER_BACKUP)
        return {"validations": _data().validations(limit=limit)}

    @app.get("/api/data-docs/{folder}")
    def api_data_docs(folder: str, viewer: ViewerDep) -> dict[str, Any]:
        _require(viewer, ORDER_BACKUP)
        docs = _data().data_docs_pages(folder)
        if docs is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"No Data Docs for order_backup run {folder!r}")
        return docs

    @app.get("/api/purge-ledger")
    def api_purge(viewer: ViewerDep, limit: Annotated[int, Query(ge=0, le=5000)] = 200) -> dict[str, Any]:
        _require(viewer, RETENTION_PURGE)
        return _data().purge_ledger(limit=limit)

    @app.get("/api/drills")
    def api_drills(viewer: ViewerDep, limit: Annotated[int, Query(ge=0, le=5000)] = 200) -> dict[str, Any]:
        _require(viewer, RESTORE_DRILL)
        data = _data()
        return data.drills(limit=limit) | {"policy": data.policy()}

    @app.get("/api/audits")
    def api_audits(viewer: ViewerDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        _require(viewer, ACCESS_AUDIT)
        return _data().audits(limit=limit)

    @app.get("/api/runs")
    def api_runs(
        viewer: ViewerDep,
        dag_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> dict[str, Any]:
        if dag_id is not None:
            if dag_id not in DAGS:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"{dag_id!r} is not a governance DAG")
            _require(viewer, dag_id)
        runs = [r for r in _data().runs(dag_id, limit=limit) if viewer.can_read(r["dag_id"])]
        return {"runs": runs}

    @app.get("/api/runs/{dag_id}/{run_id:path}")
    def api_run(dag_id: str, run_id: str, viewer: ViewerDep) -> dict[str, Any]:
        if dag_id not in DAGS:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{dag_id!r} is not a governance DAG")
        _require(viewer, dag_id)
        run = _data().run(dag_id, run_id)
        if run is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"Run {run_id!r} of {dag_id} has written no report")
        return run

    return app


# -- helpers -------------------------------------------------------------------------------


async def current_viewer(request: Request) -> Viewer:
    """The authenticated, authorized user (401 / 403 otherwise)."""
    user = await authenticate(request)
    return authorize(user, DAGS)


ViewerDep = Annotated[Viewer, Depends(current_viewer)]


def _data() -> GovernanceData:
    return GovernanceData(Sources.from_airflow(), now=dt.datetime.now(dt.timezone.utc))


def _require(viewer: Viewer, dag_id: str) -> None:
    if not viewer.can_read(dag_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"Your Airflow role may not read the runs of {dag_id}")


def _points(data: GovernanceData, viewer: Viewer) -> list[dict[str, Any]]:
    points = data.recovery_points()
    if not viewer.can_read(RESTORE_DRILL):
        for p in points:
            p["last_drill"] = None
    return points


def _overview(data: GovernanceData, viewer: Viewer) -> dict[str, Any]:
    """Everything the overview page shows, limited to the DAGs the viewer may read."""
    out: dict[str, Any] = {
        "generated_at": data.now.isoformat(),
        "user": viewer.name,
        "configuration": data.configuration(),
        "policy": data.policy(),
        "recovery_points": [],
        "validations": [],
        "purge_ledger": None,
        "drills": None,
        "audits": None,
    }
    if viewer.can_read(ORDER_BACKUP):
        out["recovery_points"] = _points(data, viewer)
        out["validations"] = data.validations(limit=5)
    if viewer.can_read(RETENTION_PURGE):
        out["purge_ledger"] = data.purge_ledger(limit=50)
    if viewer.can_read(RESTORE_DRILL):
        out["drills"] = data.drills(limit=50)
    if viewer.can_read(ACCESS_AUDIT):
        out["audits"] = data.audits(limit=30)
    out["runs"] = [r for r in data.runs(limit=25) if viewer.can_read(r["dag_id"])][:60]
    return out


def _links(request: Request) -> render.Links:
    return render.Links(request.scope.get("root_path", "") or "")


def _wants_html(request: Request) -> bool:
    path = request.url.path[len(request.scope.get("root_path", "") or "") :]
    return not path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


def _file(found: tuple[Path, str] | None, csp: str, disposition: str | None = None) -> Response:
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such report file")
    path, media_type = found
    headers = {"Content-Security-Policy": csp}
    if disposition:
        headers["Content-Disposition"] = disposition
    return FileResponse(path, media_type=media_type, headers=headers)


app = create_app()
