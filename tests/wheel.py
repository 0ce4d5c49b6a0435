"""The package as a user gets it: built from a clean copy of the checkout, installed in a venv.

tests/test_install.py checks the sdist and the wheel built from it; loadtests/cluster.py runs
its instances from the wheel installed in a venv of each instance's own, as hosts would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .servers import clean_copy

__all__ = ["build", "install"]


def build(out: Path, *flags: str) -> Path:
    """``python -m build FLAGS`` of a clean copy of the checkout into ``out``; returns ``out``.

    From a clean copy: a build in the checkout would read its leftovers (build/, egg-info)."""
    with tempfile.TemporaryDirectory(prefix="tablestream-checkout-") as checkout:
        source = clean_copy(Path(checkout))
        subprocess.run(
            [sys.executable, "-m", "build", *flags, "--outdir", out, source],
            check=True,
            capture_output=True,
            timeout=600,
        )
    return out


def install(wheel: Path, venv: Path, extras: str = "") -> Path:
    """A fresh venv at ``venv`` with ``wheel[extras]`` and its dependencies; returns ``venv``.

    pip runs outside the checkout and without PYTHONPATH: a ``tablestream.egg-info`` on its
    path would pass for the package already installed, and only the dependencies would be."""
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "--quiet", f"{wheel}{extras}"],
        check=True,
        capture_output=True,
        timeout=600,
        cwd=venv.parent,
        env=env,
    )
    return venv
