# syntax=docker/dockerfile:1
# The Lomevexi data-governance image: the official Airflow image plus the project's pinned
# requirements, the governance library (installed as a package), the DAGs, the plugin and the
# Great Expectations suites. Build: `docker build -t lomevexi-governance:3.3.2 .`
# (docs/deployment.md). The Airflow and Python versions must match requirements.txt and
# pyproject.toml; tests/unit/test_deployment_files.py checks that they do.
FROM apache/airflow:3.3.2-python3.11

# The base image already runs as the unprivileged `airflow` user (uid 50000, gid 0): nothing
# here needs root. Say so explicitly so that a later edit cannot silently change it.
USER 50000
WORKDIR /opt/airflow

# Dependencies first, in their own layer: it is rebuilt only when the pins change. Naming
# apache-airflow with the image's own version keeps pip from ever up- or downgrading the
# Airflow the image was built and tested with; the build fails if a pin disagrees.
COPY requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/airflow/requirements.txt \
 && installed="$(python -c 'import importlib.metadata as m; print(m.version("apache-airflow"))')" \
 && if [ "$installed" != "$AIRFLOW_VERSION" ]; then \
      echo "apache-airflow is $installed, expected $AIRFLOW_VERSION" >&2; exit 1; \
    fi

# The library, installed as a regular (non-editable) package with its package data
# (policy.yaml, the store schema) into the airflow user's site-packages. --no-deps: everything
# it needs is pinned above. The source folder is the airflow user's: pip builds in it.
COPY --chown=50000:0 pyproject.toml README.md /opt/airflow/src/
COPY --chown=50000:0 include/ /opt/airflow/src/include/
RUN pip install --no-cache-dir --no-deps /opt/airflow/src \
 && rm -rf /opt/airflow/src/build /opt/airflow/src/include/*.egg-info

# What the scheduler, the dag-processor, the workers and the API server load at run time. Owned
# by root and only readable by the airflow user: a task cannot rewrite the code that runs it.
COPY dags/ /opt/airflow/dags/
COPY plugins/ /opt/airflow/plugins/
COPY expectations/ /opt/airflow/expectations/

# Mount points of the governance volumes (docker-compose.yaml): a named volume starts as a copy
# of the image's folder, so these make it writable by the airflow user (and by any uid in group
# 0, for AIRFLOW_UID) instead of root's.
RUN mkdir -p /opt/airflow/governance/reports /opt/airflow/governance/kms \
 && chmod 0770 /opt/airflow/governance/reports /opt/airflow/governance/kms

# Configuration that is the same in every deployment. Secrets and site settings (connections,
# variables, keys) are never baked in: they come from the environment or a secrets backend.
ENV GOVERNANCE_EXPECTATIONS_DIR=/opt/airflow/expectations \
    GX_ANALYTICS_ENABLED=false \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES_REGEXP='lomevexi_governance\..*'
