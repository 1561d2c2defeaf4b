"""Failure alerts reach the configured channel: Slack's Web API, served here by a real local HTTP server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import parse_qs

import pytest
import yaml
from kubecost_etl.airflow.notifiers import notify_failure


@pytest.fixture
def slack_api(monkeypatch):
    posts: list[dict] = []

    class SlackApi(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            is_json = self.headers.get("Content-Type", "").startswith("application/json")
            posts.append(
                {
                    "path": self.path,
                    "auth": self.headers.get("Authorization"),
                    "form": json.loads(body) if is_json else {k: v[0] for k, v in parse_qs(body).items()},
                }
            )
            answer = json.dumps({"ok": True, "channel": "C1", "ts": "1.0"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), SlackApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_TEST",
        json.dumps(
            {
                "conn_type": "slack",
                "password": "xoxb-secret-token",
                "extra": {"base_url": f"http://127.0.0.1:{server.server_address[1]}/"},
            }
        ),
    )
    yield posts
    server.shutdown()


def failure_context():
    ti = SimpleNamespace(dag_id="kubecost_etl_backup", task_id="backup_cluster.stream", map_index=1)
    return {"ti": ti, "run_id": "scheduled__x", "exception": RuntimeError("pod went away")}


def configure(monkeypatch, tmp_path, alerts) -> None:
    config = tmp_path / "kubecost-etl.yaml"
    config.write_text(yaml.safe_dump({"alerts": alerts, "clusters": [{"id": "a"}]}))
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(config))


def test_slack_alert_is_posted_to_the_configured_channel(slack_api, monkeypatch, tmp_path):
    configure(
        monkeypatch,
        tmp_path,
        {"notifier": "slack", "slack_conn_id": "slack_test", "slack_channel": "#kubecost-alerts"},
    )
    notify_failure(failure_context())
    [post] = slack_api
    assert post["path"].endswith("chat.postMessage") and post["auth"] == "Bearer xoxb-secret-token"
    assert post["form"]["channel"] == "#kubecost-alerts"
    assert post["form"]["text"] == (
        "Kubecost ETL task failed: kubecost_etl_backup.backup_cluster.stream[1] "
        "run scheduled__x: pod went away"
    )


def test_none_sends_nothing_and_a_missing_file_does_not_raise(slack_api, monkeypatch, tmp_path, caplog):
    configure(monkeypatch, tmp_path, {"notifier": "none"})
    notify_failure(failure_context())
    monkeypatch.setenv("KUBECOST_ETL_CONFIG", str(tmp_path / "gone.yaml"))
    notify_failure(failure_context())  # an alert path must never raise
    assert slack_api == []
    assert "cannot read alert settings" in caplog.text


def test_the_alert_never_carries_a_secret_from_the_exception(slack_api, monkeypatch, tmp_path):
    configure(monkeypatch, tmp_path, {"notifier": "slack", "slack_conn_id": "slack_test"})
    context = failure_context()
    context["exception"] = ValueError(
        "Invalid header value b'Bearer tok-6Hn2Ke9QwR4tY7uI\\n' (secret_key: Zq8TkXr2)"
    )
    notify_failure(context)
    [post] = slack_api
    assert "tok-6Hn2Ke9QwR4tY7uI" not in post["form"]["text"] and "Zq8TkXr2" not in post["form"]["text"]
    assert "Invalid header value b'" in post["form"]["text"] and "<redacted>" in post["form"]["text"]
