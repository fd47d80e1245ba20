import os

# Tests run in the smoke profile unless told otherwise, and never touch the user's model cache.
os.environ.setdefault("VAE_BOOK_PROFILE", "smoke")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", False)


import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def built_book(tmp_path_factory):
    """Build the whole book once per test session, in the smoke profile, into a temporary folder.

    Uses ``scripts/build_book.py`` (as ``make book`` does): ``VAE_BOOK_STATIC=1`` so explorers are
    static HTML, MathJax installed by npm into the site, a fresh execution cache. Returns
    ``(build_dir, completed_process)`` with ``build_dir / "html"`` the site; the build executes every
    chapter (a cell that raises fails it) and turns warnings into errors. The log is written to
    ``<tmp>/build.log``.
    """
    sys.path.insert(0, str(ROOT / "scripts"))
    import build_book  # noqa: E402

    out = tmp_path_factory.mktemp("book")
    env = {**os.environ, "VAE_BOOK_PROFILE": "smoke", "VAE_BOOK_CACHE": str(out / "models")}
    t0 = time.perf_counter()
    proc = build_book.build(ROOT, out, env=env, capture=True)
    proc.seconds = time.perf_counter() - t0
    (out / "build.log").write_text(f"{proc.stdout}\n{proc.stderr}\nbuild took {proc.seconds:.0f} s\n")
    return out / "_build", proc
