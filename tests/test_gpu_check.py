"""bench/gpu_check.py on a machine without a GPU: it says so and exits 0, and its offline install logic."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import gpu_check  # noqa: E402


def test_without_a_gpu_it_says_so_and_exits_0():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py")], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no GPU" in proc.stdout and "'cpu'" in proc.stdout


def test_missing_packages_come_from_the_wheel_folder_only(monkeypatch, tmp_path):
    calls = []
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def fake_pip(cmd, check):
        calls.append(cmd)
        (site / "vae_book_fake_dep.py").write_text("x = 1\n")  # what installing the wheel would do
        return types.SimpleNamespace(returncode=0)

    monkeypatch.setattr(gpu_check.subprocess, "run", fake_pip)
    with pytest.raises(SystemExit, match=r"missing packages \['vae-book-fake-dep'\].*--wheels DIR"):
        gpu_check.ensure_packages({"vae_book_fake_dep": "vae-book-fake-dep"}, None)
    assert not calls
    gpu_check.ensure_packages({"vae_book_fake_dep": "vae-book-fake-dep", "numpy": "numpy"}, str(tmp_path))
    (cmd,) = calls
    assert cmd[-4:] == ["--no-index", "--find-links", str(tmp_path), "vae-book-fake-dep"]  # never an index
    gpu_check.ensure_packages({"vae_book_fake_dep": "vae-book-fake-dep"}, str(tmp_path))  # now importable
    assert len(calls) == 1


def test_it_reads_the_jax_floor_from_pyproject():
    import re

    declared = re.search(r'"jax>=([0-9.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert gpu_check.jax_floor() == declared
    assert gpu_check._vtuple("0.10.2+cuda13") == (0, 10, 2)
