"""Who may see the Governance view, decided by Airflow's own auth manager.

Airflow mounts a plugin's FastAPI app *without* its authentication, so every route of the
view (except the navigation icon) depends on :func:`require_viewer`:

1. **Authentication** is Airflow's: :func:`airflow.api_fastapi.core_api.security.get_user`
   reads the JWT the auth manager issued, from ``Authorization: Bearer`` (API clients) or
   the ``_token`` cookie the UI login sets (the browser, also inside the navigation iframe),
   and validates it (signature, expiry, audience, revocation). No token: 401. Expired: 401.
   Invalid or revoked: 403 (Airflow's own answers).
2. **Authorization** asks the configured auth manager, so it works the same with the simple
   auth manager, FAB or Keycloak: ``is_authorized_custom_view(GET, "Governance")`` to open
   the view at all, then ``is_authorized_dag(GET, RUN, dag_id)`` per governance DAG to see
   that DAG's runs and evidence. With the simple auth manager every role (viewer, user, op,
   admin) may read; with FAB, grant ``can_read`` on the ``Governance`` resource.

The airflow imports happen per request: the plugin module is also loaded by the scheduler
and the workers, which never serve the view.
"""


from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request, status

RESOURCE_NAME = "Governance"


@dataclass(frozen=True)
class Viewer:
    """The authenticated user and what they may see."""

    name: str
    role: str | None
    readable_dags: frozenset[str]
    user: Any = None

    def can_read(self, dag_id: str) -> bool:
        return dag_id in self.readable_dags


async def authenticate(request: Request) -> Any:
    """The Airflow user behind the request's JWT (bearer header first, then the UI cookie)."""
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.security import HTTPBearer

    credentials = await HTTPBearer(auto_error=False)(request)
    return await get_user(request, None, credentials)


def authorize(user: Any, dag_ids: tuple[str, ...]) -> Viewer:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    manager = get_auth_manager()
    if not manager.is_authorized_custom_view(method="GET", resource_name=RESOURCE_NAME, user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Your Airflow role may not open the Governance view")
    readable = frozenset(
        dag_id
        for dag_id in dag_ids
        if manager.is_authorized_dag(
            method="GET", access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag_id), user=user
        )
    )
    return Viewer(name=user.get_name(), role=getattr(user, "role", None), readable_dags=readable, user=user)
