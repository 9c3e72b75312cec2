"""Installing the tool next to another library keeps that library's torch.

``pip install -e .`` into an environment that already holds a torch within the
declared range must not replace it (an exact pin did: easyfsl's torch 2.14.1 was
swapped for 2.13.0 and torchvision broke).  Checked offline: a fresh environment
sees this one's packages, plus a torch distribution of another version placed
before them, and ``pip install --dry-run --no-index -e .`` must plan to install
the project and nothing else.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _declared_torch() -> str:
    import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    (torch,) = [d for d in deps if re.match(r"torch\b", d)]
    return torch


def _env_with_torch(tmp_path: Path, version: str) -> Path:
    """A venv whose own site-packages holds only a torch ``version`` distribution (metadata),
    in front of this interpreter's packages (a .pth file); returns its python."""
    venv = tmp_path / f"venv-{version}"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True, timeout=60).stdout.strip())  # fmt: skip
    info = site / f"torch-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n", encoding="utf-8")
    (info / "INSTALLER").write_text("pip\n", encoding="utf-8")
    (info / "RECORD").write_text(f"torch-{version}.dist-info/METADATA,,\n", encoding="utf-8")
    (site / "zz-outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    return python


def _dry_run(python: Path, tmp_path: Path) -> tuple[int, list[tuple[str, str]], str]:
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "--dry-run", "--no-index", "--no-build-isolation", "--report", str(report), "-e", str(REPO)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if proc.returncode != 0:
        return proc.returncode, [], proc.stdout + proc.stderr
    plan = json.loads(report.read_text(encoding="utf-8"))["install"]
    return 0, [(i["metadata"]["name"], i["metadata"]["version"]) for i in plan], proc.stdout


def test_torch_is_a_range_not_a_pin() -> None:
    from packaging.requirements import Requirement

    spec = Requirement(_declared_torch()).specifier
    assert "2.13.0" in spec and "2.14.1" in spec and "2.3.0" in spec  # tested, another library's, the lower bound
    assert "2.2.2" not in spec and "3.0.0" not in spec  # numpy 2 needs torch >= 2.3; a new major is not assumed


@pytest.mark.slow
@pytest.mark.parametrize("version", ["2.14.1", "2.3.0"])
def test_pip_install_editable_keeps_a_torch_within_the_range(tmp_path: Path, version: str) -> None:
    python = _env_with_torch(tmp_path, version)
    rc, plan, out = _dry_run(python, tmp_path)
    assert rc == 0, out[-3000:]
    assert [name for name, _ in plan] == ["audioset-fewshot"], plan  # torch (and everything else) kept


@pytest.mark.slow
def test_a_torch_outside_the_range_is_not_kept(tmp_path: Path) -> None:
    """The check can fail: a torch 3 would have to be replaced (offline, pip says it cannot)."""
    python = _env_with_torch(tmp_path, "3.0.0")
    rc, plan, out = _dry_run(python, tmp_path)
    assert rc != 0 or any(name == "torch" for name, _ in plan), out[-3000:]
    assert rc == 0 or "torch" in out


def test_the_test_script_installs_the_cpu_torch_wheel_before_the_project() -> None:
    """CI must never pull a CUDA build: the CPU wheel of the tested torch goes in first."""
    lines = (REPO / "scripts" / "test.sh").read_text(encoding="utf-8").splitlines()
    torch_line = next(i for i, ln in enumerate(lines) if "torch==2.13.0" in ln and "pip install" in ln)
    assert "--index-url" not in lines[torch_line]  # PyPI (and the wheels on disk) only: no other host
    project_line = next(i for i, ln in enumerate(lines) if re.search(r"pip install .*-e \"?\.\[test\]", ln))
    assert torch_line < project_line
