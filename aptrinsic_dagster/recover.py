"""Free the warehouse pool after a run whose worker died, when no Dagster daemon does it.

    DAGSTER_HOME=... python -m aptrinsic_dagster.recover               # who holds the pool; free ended runs
    DAGSTER_HOME=... python -m aptrinsic_dagster.recover --fail RUN_ID # a started run whose process is gone

A run killed with its worker (kill -9, OOM, a reboot) keeps its slot in pool ``aptrinsic_warehouse``
(limit 1), so every later step in the pool waits forever. Under ``dagster dev`` or the daemon, run
monitoring frees it (dagster.yaml). Through the CLI (``dagster asset materialize``, ``dagster job
execute``) nothing does: the killed run even stays STARTED. This command is the manual step.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

COMMAND = "python -m aptrinsic_dagster.recover"
# assets.POOL; not imported from there so that Dagster's processes can load the log handler cheaply.
POOL = "aptrinsic_warehouse"


@dataclass(frozen=True)
class Holder:
    """A run that holds (or has been assigned) a slot of the pool."""

    run_id: str
    status: str  # a DagsterRunStatus name, or DELETED
    pid: int | None  # the process that last started a step of the run

    @property
    def ended(self) -> bool:
        return self.status in ("SUCCESS", "FAILURE", "CANCELED", "DELETED")

    @property
    def pid_here(self) -> str:
        if self.pid is None:
            return "pid unknown"
        return f"pid {self.pid} {'is running' if _alive(self.pid) else 'is not running'} on this machine"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _last_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    records = instance.get_records_for_run(
        run_id, of_type={dg.DagsterEventType.STEP_START, dg.DagsterEventType.RUN_START}, ascending=False, limit=1
    ).records
    event = records[0].event_log_entry.dagster_event if records else None
    return event.pid if event else None


def holders(instance: dg.DagsterInstance, pool: str = POOL, exclude: str | None = None) -> list[Holder]:
    """Runs holding a slot of ``pool`` or assigned one, except ``exclude`` (the asking run)."""
    info = instance.event_log_storage.get_concurrency_info(pool)
    run_ids = [s.run_id for s in info.claimed_slots] + [p.run_id for p in info.pending_steps if p.assigned_timestamp]
    found = []
    for run_id in dict.fromkeys(run_ids):
        if run_id == exclude:
            continue
        run = instance.get_run_by_id(run_id)
        found.append(Holder(run_id, run.status.value if run else "DELETED", _last_pid(instance, run_id)))
    return found


def free_ended(instance: dg.DagsterInstance, pool: str = POOL) -> list[Holder]:
    """Free the slots of runs that have ended: always safe, nothing of theirs runs any more."""
    freed = [h for h in holders(instance, pool) if h.ended]
    for holder in freed:
        instance.event_log_storage.free_concurrency_slots_for_run(holder.run_id)
    return freed


def fail_and_free(instance: dg.DagsterInstance, run_id: str) -> str:
    """Mark a run whose worker is gone FAILURE (if it has not ended) and free all its slots."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise ValueError(f"no run {run_id} in this instance (DAGSTER_HOME={os.environ.get('DAGSTER_HOME')})")
    if not run.is_finished:
        instance.report_run_failed(
            run, f"Marked failed by `{COMMAND} --fail`: its run worker is gone; its pool slots were freed."
        )
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)
    return instance.get_run_by_id(run_id).status.value


def hint(pool: str, asking_run_id: str | None) -> str:
    """What the person watching a blocked step should do, naming the run that holds the pool."""
    try:
        with dg.DagsterInstance.get() as instance:
            found = holders(instance, pool, exclude=asking_run_id)
    except Exception:  # no DAGSTER_HOME, or another instance: the generic advice still holds
        found = []
    if not found:
        return f"If the run holding pool {pool} is dead (killed, OOM), free it: `{COMMAND}` (README: How to recover)."
    parts = []
    for holder in found:
        if holder.ended:
            parts.append(f"Run {holder.run_id} ({holder.status}) still holds pool {pool}: `{COMMAND}` frees it.")
        else:
            parts.append(
                f"Run {holder.run_id} ({holder.status}, {holder.pid_here}) holds pool {pool}. "
                f"If it was killed, free it: `{COMMAND} --fail {holder.run_id}`."
            )
    return " ".join(parts) + " (README: How to recover)"


class BlockedStepHintHandler(logging.StreamHandler):
    """After Dagster's "Step (still) blocked by limit for pool ..." (repeated every 5 minutes, with
    no more to it), writes which run holds the pool and the command that frees it, to stderr.

    Installed by dagster.yaml (``python_logs.dagster_handler_config``): Dagster builds that line
    itself, so a handler beside its console output is the one place to add to it.
    """

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        message = meta.get("orig_message") or ""
        if "blocked by limit for pool " not in message:
            return
        pool = message.rsplit(" ", 1)[-1]
        run_id = meta.get("run_id")
        step = meta.get("step_key") or ""
        self.stream.write(f"{meta.get('job_name')} - {run_id} - {step} - WAITING ON POOL - {hint(pool, run_id)}\n")
        self.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fail", metavar="RUN_ID", action="append", default=[],
                        help="mark this run FAILURE and free its slots (its process must be gone)")  # fmt: skip
    parser.add_argument("--force", action="store_true", help="--fail even if the run's pid runs on this machine")
    args = parser.parse_args(argv)
    with dg.DagsterInstance.get() as instance:
        for run_id in args.fail:
            holder = next((h for h in holders(instance) if h.run_id == run_id), None)
            if holder and not holder.ended and holder.pid and _alive(holder.pid) and not args.force:
                print(f"run {run_id}: {holder.pid_here}; check `ps -p {holder.pid} -o pid,lstart,args`, "
                      "then stop it or add --force", file=sys.stderr)  # fmt: skip
                return 2
            print(f"run {run_id}: now {fail_and_free(instance, run_id)}, its slots freed")
        for holder in free_ended(instance):
            print(f"run {holder.run_id} ({holder.status}) had ended: its slots freed")
        remaining = holders(instance)
        for holder in remaining:
            print(
                f"run {holder.run_id} ({holder.status}, {holder.pid_here}) holds pool {POOL}; "
                f"if its worker is gone: {COMMAND} --fail {holder.run_id}"
            )
        if not remaining:
            print(f"pool {POOL}: free")
    return 0


if __name__ == "__main__":
    sys.exit(main())
