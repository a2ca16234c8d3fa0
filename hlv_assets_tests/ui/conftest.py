"""The UI under test: `hlv ui` (Dagster webserver + daemon) on a free port with its own DAGSTER_HOME and HLV_HOME,
and headless Chromium (Debian's `chromium`, driven by Playwright). A missing browser fails, never skips."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hlv_assets.lib.paths import REPO_ROOT

#: Screenshots and the server log (git-ignored).
OUTPUT = REPO_ROOT / "test-output" / "ui"
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-dev-shm-usage"]


def chromium_path() -> str:
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate) if "/" not in candidate else (candidate if os.access(candidate, os.X_OK)
                                                                          else None)
        if found:
            return found
    pytest.fail("Chromium is missing: the UI test needs Debian's `chromium` (`apt-get install -y chromium`, "
                "run by `make browser`); Playwright cannot download its own browser here.")


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is missing: `.venv/bin/pip install playwright` (the Makefile installs it)")
    executable = chromium_path()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for old in OUTPUT.glob("*.png"):
        old.unlink()
    return OUTPUT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class UIServer:
    url: str
    dagster_home: Path
    hlv_home: Path
    env: dict
    process: subprocess.Popen
    log: Path
    started_s: float = 0.0

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


def _wait_until_serving(server: UIServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"`hlv ui` exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/server_info", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(f"the webserver did not answer within {timeout:.0f}s:\n{server.log_tail()}")


def stop_process_group(process: subprocess.Popen, grace_s: float = 40) -> None:
    """SIGTERM to the server's own process group (hlv ui, dagster dev, webserver, daemon, code server), then
    SIGKILL to whatever is left of that group after `grace_s`. Only this group, by its id."""
    pgid = process.pid  # start_new_session=True: the group id is the leader's pid
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        process.poll()
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory, data_dir, screenshots) -> Iterator[UIServer]:
    """`hlv ui` in its own session (the `set -m` of a shell script), so that stopping it reaches every child."""
    root = tmp_path_factory.mktemp("ui")
    dagster_home, hlv_home = root / "dagster", root / "hlv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "HLV_"))}
    env.update({"DAGSTER_HOME": str(dagster_home), "HLV_HOME": str(hlv_home), "HLV_PROFILE": "tiny",
                "HLV_DATA_DIR": str(data_dir), "PYTHONWARNINGS": "ignore",
                # automation on, as after `make ui`, ticking every 15 s so that two minutes see several ticks
                "HLV_AUTOMATION_STATUS": "running", "HLV_AUTOMATION_SECONDS": "15"})
    dagster_home.mkdir(parents=True)
    # the local template, as `hlv ui` itself would write it; written first so the test's own Python API
    # calls and the server open the same instance without racing to create it
    shutil.copy(REPO_ROOT / "deploy" / "dagster.local.yaml", dagster_home / "dagster.yaml")
    port = free_port()
    log = screenshots / "webserver.log"
    hlv = Path(sys.executable).with_name("hlv")
    started = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen([str(hlv), "ui", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                   cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = UIServer(f"http://127.0.0.1:{port}", dagster_home, hlv_home, env, process, log)
    try:
        yield server
    finally:
        stop_process_group(process)
        print(f"\nUI server stopped; log: {log} (up {time.monotonic() - started:.0f}s)")


def wait_for_server(server: UIServer, timeout: float = 150) -> float:
    started = time.monotonic()
    _wait_until_serving(server, timeout)
    return time.monotonic() - started
