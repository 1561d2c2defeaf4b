"""A real browser (headless Chromium over the DevTools protocol) logged in with the UI's cookie reads
the page.

Debian's ``chromium`` is installed when missing (``apt-get install -y chromium`` as root); the test is
skipped, saying why, only where that is impossible.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.servers import free_loopback_port

from .conftest import CLUSTER


def _install_chromium() -> str | None:
    if shutil.which("chromium"):
        return shutil.which("chromium")
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and cannot be installed here (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
        if done.returncode != 0:
            pytest.skip(f"chromium cannot be installed: {' '.join(command)} failed: {done.stderr[-500:]}")
    return shutil.which("chromium")


class DevTools:
    def __init__(self, ws_url: str):
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def browser(tmp_path):
    binary = _install_chromium()
    port = free_loopback_port()
    process = subprocess.Popen(
        [
            binary,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            f"--remote-debugging-port={port}",
            "--remote-allow-origins=*",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1280,1000",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "chromium.log").open("w"),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        targets = []
        while time.monotonic() < deadline and not targets:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
                    targets = [t for t in json.loads(response.read()) if t["type"] == "page"]
            except OSError:
                time.sleep(0.2)
        assert targets, (tmp_path / "chromium.log").read_text()[-2000:]
        tools = DevTools(targets[0]["webSocketDebuggerUrl"])
        yield tools
        tools.close()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def test_the_page_renders_clusters_gaps_and_run_links_in_a_browser(status_server, browser, tmp_path):
    victim = sorted(p for p in status_server.etl.rglob("*") if "/allocations/1d/" in p.as_posix())[2]
    victim.unlink()  # at least one gap, whatever ran before
    browser.call("Network.enable")
    browser.call(
        "Network.setCookie", name="_token", value=status_server.token, url=status_server.url, path="/"
    )
    browser.call("Page.enable")
    browser.call("Page.navigate", url=status_server.url + "/kubecost-etl/")
    deadline = time.monotonic() + 60
    while not browser.evaluate(
        "document.readyState == 'complete' && !!document.querySelector('[data-cluster-id]')"
    ):
        assert time.monotonic() < deadline, browser.evaluate("document.documentElement.outerHTML")[:2000]
        time.sleep(0.2)
    seen = browser.evaluate("""JSON.stringify({
        clusters: [...document.querySelectorAll('[data-cluster-id]')].map(e => e.dataset.clusterId),
        gaps: document.querySelectorAll('.slot.gap').length,
        gapStores: [...document.querySelectorAll('.slot.gap')].map(e => e.closest('.map').dataset.store),
        runs: [...document.querySelectorAll('a.run-link')].map(e => e.getAttribute('href')),
    })""")
    seen = json.loads(seen)
    assert seen["clusters"][0] == CLUSTER
    assert seen["gaps"] >= 1 and "allocations/1d" in seen["gapStores"]
    assert any(href.startswith("/dags/kubecost_etl_backup/runs/") for href in seen["runs"])
    shot = browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    path = tmp_path / "status-page.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    if os.environ.get("KUBECOST_ETL_SAVE_SCREENSHOT"):  # refresh docs/status-page.png by hand with this
        target = Path(os.environ["KUBECOST_ETL_SAVE_SCREENSHOT"])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
