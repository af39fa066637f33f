"""AWS DataSync's task execution statuses and what each means for one phase's sensor.

AWS's vocabulary is ``QUEUED, LAUNCHING, PREPARING, TRANSFERRING, VERIFYING, SUCCESS, ERROR, CANCELLING``;
moto reports ``INITIALIZING`` where AWS says LAUNCHING. A phase sensor asks one question: has the
execution *left* my phase (a later status, or SUCCESS), failed in it, or is it still before or in it?
"""

from __future__ import annotations

import enum
from typing import Any

#: The phases a TaskGroup waits for, in the order AWS runs them.
PHASES: tuple[str, ...] = ("LAUNCHING", "PREPARING", "TRANSFERRING", "VERIFYING")
#: Every status AWS (and moto) reports, earliest first; CANCELLING and ERROR have no rank.
_RANK = {"QUEUED": 0, "INITIALIZING": 1, "LAUNCHING": 1, "PREPARING": 2, "TRANSFERRING": 3, "VERIFYING": 4,
         "SUCCESS": 5}
KNOWN_STATUSES: tuple[str, ...] = (*_RANK, "CANCELLING", "ERROR")
#: Statuses in which an execution still runs (so CancelTaskExecution applies and a retry may reattach).
RUNNING_STATUSES = frozenset({"QUEUED", "INITIALIZING", "LAUNCHING", "PREPARING", "TRANSFERRING", "VERIFYING",
                              "CANCELLING"})
#: Result.<X>Status fields that say how each phase after LAUNCHING ended (PENDING, SUCCESS or ERROR).
_PHASE_RESULT = {"PREPARING": "PrepareStatus", "TRANSFERRING": "TransferStatus", "VERIFYING": "VerifyStatus"}


class PhaseOutcome(enum.StrEnum):
    WAITING = "WAITING"  #: still queued, before or in the phase, or CANCELLING (which ends in ERROR)
    LEFT = "LEFT"  #: the phase is over and went well: a later status, or SUCCESS
    FAILED = "FAILED"  #: the execution ended in ERROR in (or before) this phase
    UNKNOWN = "UNKNOWN"  #: a status this module does not know: fail loudly rather than guess


def failed_phase(result: dict[str, Any] | None) -> str | None:
    """The phase an ERROR execution failed in, read off ``Result``; None when AWS does not say (moto)."""
    if not result:
        return None
    for phase in reversed(PHASES[1:]):
        if result.get(_PHASE_RESULT[phase]) == "ERROR":
            return phase
    reached = [p for p in PHASES[1:] if result.get(_PHASE_RESULT[p]) == "SUCCESS"]
    if not reached:
        return "LAUNCHING" if any(k in result for k in _PHASE_RESULT.values()) else None
    following = PHASES.index(reached[-1]) + 1
    return PHASES[following] if following < len(PHASES) else "VERIFYING"


def phase_outcome(phase: str, status: str, result: dict[str, Any] | None = None) -> PhaseOutcome:
    """What ``status`` (with the execution's ``Result``) means for the sensor of ``phase``.

    An ERROR whose Result shows the phase itself succeeded (the failure came later) counts as LEFT, so
    the sensor of the phase that actually failed is the one that fails.
    """
    if phase not in PHASES:
        raise ValueError(f"phase {phase!r} is not one of {', '.join(PHASES)}")
    if status == "ERROR":
        failed = failed_phase(result)
        if failed is not None and PHASES.index(failed) > PHASES.index(phase):
            return PhaseOutcome.LEFT
        return PhaseOutcome.FAILED
    if status == "CANCELLING":
        return PhaseOutcome.WAITING
    if status not in _RANK:
        return PhaseOutcome.UNKNOWN
    return PhaseOutcome.LEFT if _RANK[status] > _RANK[phase] else PhaseOutcome.WAITING


def execution_id(task_execution_arn: str) -> str:
    """``exec-0123…``: the last segment of a TaskExecutionArn, as DataSync names executions."""
    return task_execution_arn.rsplit("/", 1)[-1]
