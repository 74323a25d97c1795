# Sourced by bin/airflow, the Makefile and the tests: the project's embedded-default environment.
# Every variable is only a default: whatever the caller already exported (AIRFLOW_*, GOVERNANCE_*)
# is kept as it is.
GOV_ROOT="${GOV_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
GOV_LOCAL="${GOV_LOCAL:-$GOV_ROOT/.local}"
export GOV_ROOT GOV_LOCAL

: "${AIRFLOW_HOME:=$GOV_LOCAL/airflow}"
: "${AIRFLOW__CORE__DAGS_FOLDER:=$GOV_ROOT/dags}"
: "${AIRFLOW__CORE__PLUGINS_FOLDER:=$GOV_ROOT/plugins}"
: "${AIRFLOW__CORE__LOAD_EXAMPLES:=False}"
: "${AIRFLOW__CORE__EXECUTOR:=LocalExecutor}"
: "${AIRFLOW__CORE__DEFAULT_TIMEZONE:=UTC}"
: "${AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES_REGEXP:=lomevexi_governance\..*}"
: "${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:=sqlite:///$AIRFLOW_HOME/airflow.db}"
: "${AIRFLOW__LOGGING__BASE_LOG_FOLDER:=$AIRFLOW_HOME/logs}"
: "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:=admin:admin,compliance:viewer,oncall:op}"
: "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:=$AIRFLOW_HOME/simple_auth_manager_passwords.json}"
: "${AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK:=False}"
: "${AIRFLOW__API__PORT:=8080}"
export AIRFLOW_HOME AIRFLOW__CORE__DAGS_FOLDER AIRFLOW__CORE__PLUGINS_FOLDER AIRFLOW__CORE__LOAD_EXAMPLES \
  AIRFLOW__CORE__EXECUTOR AIRFLOW__CORE__DEFAULT_TIMEZONE AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES_REGEXP \
  AIRFLOW__DATABASE__SQL_ALCHEMY_CONN AIRFLOW__LOGGING__BASE_LOG_FOLDER \
  AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE \
  AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK AIRFLOW__API__PORT

# The embedded default: a SQLite store, a local keyring, local folders. The root key lives in a
# 0600 file created by `make demo` (bin/make-local-key); the connection only names the file.
: "${AIRFLOW_CONN_STORE_DB:=sqlite:///$GOV_LOCAL/store/store.db}"
if [[ -z "${AIRFLOW_CONN_GOVERNANCE_KMS:-}" ]]; then
  AIRFLOW_CONN_GOVERNANCE_KMS='{"conn_type": "generic", "extra": {"backend": "local", "keyring_path": "'"$GOV_LOCAL"'/kms/keyring.db", "root_key_file": "'"$GOV_LOCAL"'/kms/root.key"}}'
fi
: "${AIRFLOW_VAR_GOVERNANCE_BACKUP_ROOT:=$GOV_LOCAL/backups}"
: "${AIRFLOW_VAR_GOVERNANCE_REPORT_ROOT:=$GOV_LOCAL/reports}"
export AIRFLOW_CONN_STORE_DB AIRFLOW_CONN_GOVERNANCE_KMS AIRFLOW_VAR_GOVERNANCE_BACKUP_ROOT AIRFLOW_VAR_GOVERNANCE_REPORT_ROOT

# Great Expectations must not phone home.
export GX_ANALYTICS_ENABLED=false
export PATH="$GOV_ROOT/.venv/bin:$PATH"
