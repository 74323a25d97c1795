"""Exceptions with messages that name the table, column, file or key at fault.

Messages never carry customer values or key material: callers pass identifiers only.
"""

from __future__ import annotations


class GovernanceError(Exception):
    """Base class for every failure this library raises on purpose."""


class TransientError(GovernanceError):
    """A service did not answer (database, object store): retrying may succeed.

    Every other :class:`GovernanceError` is permanent, so tasks fail at once without retries.
    """


class SourceUnavailable(TransientError):
    """The store (or a restore target) could not be reached."""


class PolicyError(GovernanceError):
    """The policy file is malformed or inconsistent."""


class ConfigurationError(GovernanceError):
    """A connection, variable or parameter is missing or wrong."""


class SourceSchemaError(GovernanceError):
    """The store database lacks a table or column the policy requires, or a value has the wrong type."""


class KeyMaterialError(GovernanceError):
    """A key is missing, destroyed, or the root key is wrong. Names the key id, never the key."""


class IntegrityError(GovernanceError):
    """A file, manifest or ledger does not match what was recorded (names the file or entry)."""


class ValidationFailed(GovernanceError):
    """A data-quality gate failed; the data was still handled as the policy requires."""


class NotFound(GovernanceError):
    """A recovery point, run or report does not exist."""
