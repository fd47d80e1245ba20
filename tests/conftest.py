import os

# Tests run in the smoke profile unless told otherwise, and never touch the user's model cache.
os.environ.setdefault("VAE_BOOK_PROFILE", "smoke")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", False)


import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def built_book(tmp_path_factory):
    """Build the whole book once per test session, in the smoke profile, into a temporary folder.

    Returns ``(html_dir, completed_process)``; the build executes every chapter (a cell that raises
    fails it) and turns warnings into errors.
    """
    out = tmp_path_factory.mktemp("book")
    env = {**__import__("os").environ, "VAE_BOOK_PROFILE": "smoke", "VAE_BOOK_CACHE": str(out / "models")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT), "--path-output", str(out),
         "--warningiserror", "--keep-going", "--all"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600,
    )
    (out / "build.log").write_text(proc.stdout + "\n" + proc.stderr)
    return out / "_build", proc
