"""Fixtures of the end-to-end tests: a JupyterLab server and headless Chromium (Debian's /usr/bin/chromium
driven by Playwright; no browser download), both isolated in temporary folders and offline."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab_helpers import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, Lab, free_port


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Keep each phase's report on the test item, so fixtures can tell whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The Debian Chromium binary; the e2e tests are skipped where it is not installed."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's `chromium` package (`.ci/run` does) to run the "
                    "JupyterLab end-to-end tests")
    pytest.importorskip("playwright.sync_api", reason="the [test] extra (playwright) is not installed")
    return CHROMIUM


def _isolated_env(base: Path) -> dict[str, str]:
    """Environment with every Jupyter/IPython/matplotlib folder in ``base`` and outbound checks off."""
    dirs = {"HOME": "home", "JUPYTER_CONFIG_DIR": "config", "JUPYTER_DATA_DIR": "data",
            "JUPYTER_RUNTIME_DIR": "runtime", "JUPYTERLAB_SETTINGS_DIR": "settings",
            "JUPYTERLAB_WORKSPACES_DIR": "workspaces", "IPYTHONDIR": "ipython", "MPLCONFIGDIR": "mpl"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "IPYTHON"))}
    for var, name in dirs.items():
        (base / name).mkdir(parents=True, exist_ok=True)
        env[var] = str(base / name)
    env["PYTHONUNBUFFERED"] = "1"
    # News and update checks off: server side (no feed URL, never check) and in the settings JupyterLab reads.
    (base / "config" / "jupyter_server_config.json").write_text(json.dumps({
        "ServerApp": {"open_browser": False},
        "LabApp": {"news_url": None,
                   "check_for_updates_class": "jupyterlab.handlers.announcements.NeverCheckForUpdate"},
    }))
    notification = base / "settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True, exist_ok=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # every cell in the DOM (no windowing), so the tests can wait on any cell's prompt and output
    tracker = base / "settings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True, exist_ok=True)
    (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none", "autoStartDefaultKernel": True}))
    return env


@pytest.fixture(scope="module")
def lab(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Start JupyterLab on 127.0.0.1 (free port, test token, root allowed) serving an empty notebook folder."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "work"
    root.mkdir()
    env = _isolated_env(base)
    port, token = free_port(), secrets.token_hex(16)
    log = base / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--ServerApp.token={token}", "--ServerApp.allow_root=True", f"--ServerApp.root_dir={root}",
           "--ServerApp.port_retries=0"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    server = Lab(url, token, root, log, proc)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with code {proc.returncode}:\n{server.log_tail()}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer within 90 s:\n{server.log_tail()}")
            time.sleep(0.5)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def page(lab: Lab, chromium: Path, tmp_path: Path, request: pytest.FixtureRequest):
    """A headless Chromium page (temporary profile and HOME); on failure the server log and a screenshot are kept."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path / "chromium-profile"
    home = tmp_path / "chromium-home"
    home.mkdir()
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000}, env={**os.environ, "HOME": str(home)})
        context.set_default_timeout(60_000)
        pg = context.pages[0] if context.pages else context.new_page()
        console: list[str] = []
        pg.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
        try:
            yield pg
        finally:
            rep = getattr(request.node, "rep_call", None)
            if rep is not None and rep.failed:
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                shot = ARTIFACTS / f"{request.node.name}-failure.png"
                try:
                    pg.screenshot(path=str(shot), full_page=True)
                except Exception as exc:  # noqa: BLE001 - the report below matters more
                    print(f"screenshot failed: {exc}")
                print(f"--- JupyterLab log (tail) ---\n{lab.log_tail()}")
                print("--- browser console (tail) ---\n" + "\n".join(console[-60:]))
                print(f"failure screenshot: {shot}")
            context.close()
