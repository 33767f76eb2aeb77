#!/usr/bin/env python3
"""Set up and run the project with nothing but Python 3.11+.

    python3.11 dev.py run     # virtualenv, install, migrate, demo admin, Redis, web + worker + scheduler
    python3.11 dev.py test    # virtualenv, install, pytest (the tests start their own Redis)

Extra arguments go to the underlying command: ``dev.py test -k payload``, ``dev.py run --port 8001``.
Uses only the standard library until the virtualenv (``.venv``) exists.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".installed"


def ensure_venv() -> None:
    """Create ``.venv`` and install the project with its dev extras, again whenever pyproject.toml changes."""
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be started by an older python3
        sys.exit(f"Python 3.11 or newer is needed (this is {sys.version.split()[0]}): run `python3.11 dev.py ...`.")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        print(f"Creating the virtualenv in {VENV} ...", flush=True)
        venv.create(VENV, with_pip=True, clear=True)
    print("Installing the project and its dependencies (pip install -e '.[dev]') ...", flush=True)
    pip = [str(PYTHON), "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-e", f"{ROOT}[dev]"], check=True, cwd=ROOT)
    STAMP.write_text(wanted)


def main(argv: list[str]) -> None:
    commands = {
        "run": [str(PYTHON), "-m", "config.devrun"],
        "test": [str(PYTHON), "-m", "pytest"],
    }
    if not argv or argv[0] not in commands:
        sys.exit(__doc__)
    ensure_venv()
    os.chdir(ROOT)
    command = commands[argv[0]] + argv[1:]
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
