"""Alerts: a local HTTP receiver stands in for Slack's incoming webhook, over a real socket."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from aptrinsic_dagster.alerts import CHECK_FAILURE_SENSOR, RUN_FAILURE_SENSOR
from aptrinsic_dagster.freshness import FRESHNESS_SENSOR

from .helpers import API_KEY


class Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.posts: list[tuple[str, dict]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}/services/T000/B000/secret"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append((self.headers["Content-Type"], json.loads(body)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")  # what Slack answers

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


class Daemon:
    """Ticks the alert sensors as the daemon does, keeping each sensor's cursor between ticks."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.defs, self.instance, self.cursors = defs, instance, {}
        self.tick()  # the first tick only sets the cursors: runs before it are not reported

    def tick(self) -> list[str]:
        skipped = []
        for name in (RUN_FAILURE_SENSOR, CHECK_FAILURE_SENSOR):
            # No repository on the context: runs executed in process have none either, so they match.
            context = dg.build_sensor_context(instance=self.instance, cursor=self.cursors.get(name))
            result = self.defs.resolve_sensor_def(name).evaluate_tick(context)
            self.cursors[name] = result.cursor
            skipped += [result.skip_message] if result.skip_message else []
        return skipped


def _failing_run(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    # No key: the run fails at start, before any request.
    result = defs.resolve_job_def("aptrinsic_snapshots").execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    return result


@pytest.mark.slow
def test_a_failed_run_and_a_failed_check_post_slack_payloads(defs, deploy, receiver, monkeypatch):
    deploy(users=10)
    monkeypatch.setenv("APTRINSIC_ALERT_WEBHOOK_URL", receiver.url)
    with dg.instance_for_test() as instance:
        daemon = Daemon(defs, instance)
        # A run that succeeds with failed (non-blocking) checks: freshness checks on empty assets.
        freshness = defs.resolve_sensor_def(FRESHNESS_SENSOR).evaluate_tick(
            dg.build_sensor_context(instance=instance, definitions=defs)
        )
        checks = {key for request in freshness.run_requests for key in request.asset_check_keys}
        job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_check_selection=checks)
        succeeded = job.execute_in_process(instance=instance)
        assert succeeded.success
        daemon.tick()
        assert len(receiver.posts) == 1
        text = receiver.posts[0][1]["text"]
        assert text.startswith(":warning: Aptrinsic checks failed: job `__ASSET_JOB`") and succeeded.run_id in text
        assert "• `aptrinsic/events_custom` freshness_check (WARN): The asset has never been" in text
        assert text.count("\n•") == 20 and text.endswith("... and 2 more")

        monkeypatch.delenv("APTRINSIC_API_KEY")
        failed = _failing_run(defs, instance)
        monkeypatch.setenv("APTRINSIC_API_KEY", API_KEY)
        daemon.tick()
        assert len(receiver.posts) == 2
        content_type, body = receiver.posts[1]
        assert content_type == "application/json"
        assert body["text"].startswith(":red_circle: Aptrinsic run failed: job `aptrinsic_snapshots`")
        assert failed.run_id in body["text"] and "No Aptrinsic API key" in body["text"]
        assert body["blocks"] == [{"type": "section", "text": {"type": "mrkdwn", "text": body["text"]}}]

        assert not any(API_KEY in json.dumps(body) for _, body in receiver.posts)

        # Nothing new: nothing sent again.
        daemon.tick()
        assert len(receiver.posts) == 2


def test_nothing_is_sent_while_the_webhook_is_unset(defs, deploy, receiver):
    deploy(users=10)
    with dg.instance_for_test() as instance, pytest.MonkeyPatch.context() as env:
        daemon = Daemon(defs, instance)
        env.delenv("APTRINSIC_API_KEY")
        _failing_run(defs, instance)
        skipped = daemon.tick()
    assert "APTRINSIC_ALERT_WEBHOOK_URL is not set: alerts are off." in skipped  # the failed run was seen
    assert receiver.posts == []
