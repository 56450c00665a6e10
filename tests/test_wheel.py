"""The built wheel carries every package of ours, and each imports from it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.test_layers import LAYER
from tests.test_web_support import require_uplot

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


def test_the_web_assets_and_uplot_are_in_the_wheel(installed_wheel: Path) -> None:
    require_uplot()  # install.sh copies it into web/static/vendor/ before the wheel is built
    web = ROOT / "web"
    assets = sorted(
        p.relative_to(ROOT).as_posix()
        for folder in ("static", "templates")
        for p in (web / folder).rglob("*")
        if p.is_file()
    )
    assert "web/static/vendor/uPlot.iife.min.js" in assets
    assert "web/static/vendor/uPlot.LICENSE.txt" in assets  # MIT: its notice goes with it
    assert [a for a in assets if not (installed_wheel / a).is_file()] == []
