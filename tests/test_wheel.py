"""The built wheel carries every package of ours, and each imports from it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.test_layers import LAYER

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = sorted(p for p in LAYER if (ROOT / p / "__init__.py").is_file())


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=False,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = out.glob("dialwatch-*.whl")
    target = out / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target


def test_every_package_is_in_the_wheel(installed_wheel: Path) -> None:
    missing = [p for p in PACKAGES if not (installed_wheel / p / "__init__.py").is_file()]
    assert missing == []


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_from_the_wheel(installed_wheel: Path, package: str) -> None:
    # Run from the wheel's files only: not the checkout (cwd elsewhere, wheel first on the path).
    code = (
        f"import sys; sys.path.insert(0, {str(installed_wheel)!r}); "
        f"import {package}; print({package}.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=installed_wheel.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(installed_wheel)), done.stdout
