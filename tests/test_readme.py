"""The README as a new user reads it: the two set-up commands first, and only paths that are in the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
# what the commands write, not what the repository holds
GENERATED = ("build/", "artifacts/", ".venv/")
REPO_PATH = re.compile(r"[\w.-]+(?:/[\w.-]+)*(?:\.(?:md|py|ipynb|csv|toml|css|j2|html|json)|/)")


def _tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False).stdout.split()
    return out or [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".venv" not in p.parts]


def _in_repo(path: str, files: list[str]) -> bool:
    if path.endswith("/"):
        return any(f.startswith(path) or f"/{path}" in f"/{f}" for f in files)
    return any(f == path or f.endswith(f"/{path}") for f in files)


def test_readme_starts_with_the_two_setup_commands() -> None:
    first = re.search(r"```sh\n(.*?)```", README, flags=re.S)
    assert first is not None and README.index("```sh") < README.index("\n## ")
    commands = [line.split("#")[0].strip() for line in first.group(1).splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]


def test_readme_names_only_what_the_repository_holds() -> None:
    files = _tracked()
    named = set(re.findall(r"`([^`\s]+)`", README)) | set(re.findall(r"\]\(([^)\s]+)\)", README))
    paths = {t for t in named if REPO_PATH.fullmatch(t) and not t.startswith(GENERATED)}
    assert {"docs/odata.md", "tests/data/real_messages/", "sample_data/"} <= paths  # the pattern sees paths
    missing = sorted(p for p in paths if not _in_repo(p, files))
    assert not missing, f"README names files that are not in the repository: {missing}"
    assert "../" not in README, "README points outside the repository"
