"""Opt-in alerts to a Slack-compatible incoming webhook: a failed run, and failed checks of a run
that otherwise succeeded (non-blocking checks, freshness). Off while ``APTRINSIC_ALERT_WEBHOOK_URL``
is unset; the sensors are on by default, so setting the variable is all it takes.

The payload is Slack's: ``{"text": ..., "blocks": [...]}`` (Mattermost, Teams workflows and most chat
tools take the same ``text``). The URL is a secret (a Slack webhook URL is its own credential): it is
read at each tick and never logged, tagged or put into an error.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import dagster as dg

from . import settings

RUN_FAILURE_SENSOR = "aptrinsic_run_failure_alert"
CHECK_FAILURE_SENSOR = "aptrinsic_check_failure_alert"
UNSET = f"{settings.ALERT_WEBHOOK_URL} is not set: alerts are off."


def failed_checks(instance: dg.DagsterInstance, run_id: str) -> list[dg.AssetCheckEvaluation]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    evaluations = [
        r.event_log_entry.dagster_event.event_specific_data for r in records if r.event_log_entry.dagster_event
    ]
    failed = [e for e in evaluations if isinstance(e, dg.AssetCheckEvaluation) and not e.passed]
    # In table order, not in the order parallel steps finished: the same failures read the same.
    return sorted(failed, key=lambda e: (e.asset_key.to_user_string(), e.check_name))


def _check_line(evaluation: dg.AssetCheckEvaluation) -> str:
    meta = evaluation.metadata
    if "dagster/overdue_seconds" in meta:
        detail = f"overdue by {int(meta['dagster/overdue_seconds'].value) // 60} min"
    elif "detail" in meta:
        detail = str(meta["detail"].value)
    else:
        detail = evaluation.description or ""
    line = f"• `{evaluation.asset_key.to_user_string()}` {evaluation.check_name} ({evaluation.severity.value})"
    return f"{line}: {detail}" if detail else line


def payload(title: str, run: dg.DagsterRun, lines: list[str]) -> dict[str, Any]:
    partition = run.tags.get("dagster/partition") or (
        f"{run.tags['dagster/asset_partition_range_start']}...{run.tags['dagster/asset_partition_range_end']}"
        if "dagster/asset_partition_range_start" in run.tags
        else None
    )
    head = f"{title}: job `{run.job_name}`" + (f", partition {partition}" if partition else "") + f", run {run.run_id}"
    text = "\n".join([head, *lines[:20]] + ([f"... and {len(lines) - 20} more"] if len(lines) > 20 else []))
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


def post(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
    except (urllib.error.URLError, OSError) as exc:
        # The URL is a credential: name the setting, never the URL. The tick fails and is retried.
        reason = getattr(exc, "code", None) or type(exc).__name__
        raise RuntimeError(f"The alert webhook ({settings.ALERT_WEBHOOK_URL}) refused the alert: {reason}") from None


@dg.run_failure_sensor(
    name=RUN_FAILURE_SENSOR,
    description=f"Posts a failed run (and its failed checks) to {settings.ALERT_WEBHOOK_URL}, if set.",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
def run_failure_alert(context: dg.RunFailureSensorContext) -> dg.SkipReason | None:
    url = settings.alert_webhook_url()
    if not url:
        return dg.SkipReason(UNSET)
    run = context.dagster_run
    lines = []
    for event in context.get_step_failure_events():
        error = getattr(event.event_specific_data, "error", None)
        message = (error.message if error else event.message or "").strip().splitlines() or ["failed"]
        lines.append(f"> step `{event.step_key}`: {message[0][:300]}")
    if not lines:  # failed outside a step (a resource at run start): the run's error and its causes
        error = getattr(context.failure_event.event_specific_data, "error", None)
        while error is not None:
            lines.append(f"> {error.message.strip().splitlines()[0][:300]}")
            error = error.cause
        lines = lines or [f"> {context.failure_event.message}"]
    lines += [_check_line(e) for e in failed_checks(context.instance, run.run_id)]
    post(url, payload(":red_circle: Aptrinsic run failed", run, lines))
    return None


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name=CHECK_FAILURE_SENSOR,
    description=f"Posts failed checks of successful runs (freshness, non-blocking checks) to "
    f"{settings.ALERT_WEBHOOK_URL}, if set.",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
def check_failure_alert(context: dg.RunStatusSensorContext) -> dg.SkipReason | None:
    url = settings.alert_webhook_url()
    if not url:
        return dg.SkipReason(UNSET)
    failed = failed_checks(context.instance, context.dagster_run.run_id)
    if not failed:
        return None
    post(url, payload(":warning: Aptrinsic checks failed", context.dagster_run, [_check_line(e) for e in failed]))
    return None


ALERT_SENSORS = [run_failure_alert, check_failure_alert]
