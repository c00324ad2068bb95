"""Helpers of the end-to-end tests: the JupyterLab server handle and notebook driving in the browser."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "e2e"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    """A running JupyterLab server."""

    url: str
    token: str
    root: Path
    log: Path
    process: subprocess.Popen

    def page_url(self, notebook: str) -> str:
        return f"{self.url}/lab/tree/{notebook}?token={self.token}&reset"

    def log_tail(self, chars: int = 6000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-chars:]


def copy_notebook(lab: Lab, name: str) -> Path:
    """Copy ``notebooks/<name>`` into the server's folder and return the copy."""
    target = lab.root / name
    shutil.copyfile(ROOT / "notebooks" / name, target)
    return target



def wait_kernel_idle(page, timeout: int = 90_000) -> None:
    """Wait until the status bar shows the notebook's kernel as started and idle."""
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$")).first.wait_for(timeout=timeout)


def run_all_cells(page) -> None:
    """Run > Run All Cells, through the menu bar as a user would (once the kernel is idle)."""
    wait_kernel_idle(page)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


def wait_all_cells_done(page, timeout: int) -> None:
    """Wait until every code cell shows an execution count (none queued ``[*]`` or unrun ``[ ]``)."""
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
            return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
        }""", timeout=timeout)
