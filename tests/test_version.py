"""The version number is written once, in skmnist/_version.py, and read from there
by the package metadata (hatch), ``skmnist.__version__`` and the docs."""

import re
import runpy
import sys
import tomllib
from pathlib import Path

from packaging.version import Version

import skmnist
from skmnist._version import __version__

ROOT = Path(__file__).resolve().parents[1]


def test_version_is_pep440_and_exported():
    assert str(Version(__version__)) == __version__
    assert skmnist.__version__ == __version__


def test_package_metadata_reads_version_file():
    with open(ROOT / "pyproject.toml", "rb") as file:
        pyproject = tomllib.load(file)
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["hatch"]["version"]["path"] == "skmnist/_version.py"


def test_docs_read_version_from_package(monkeypatch):
    # A version the sources cannot contain shows that conf.py asks skmnist.
    monkeypatch.setattr(skmnist, "__version__", "99.0.dev0")
    monkeypatch.setattr(sys, "path", list(sys.path))  # conf.py adds docs/
    monkeypatch.setenv("MPLBACKEND", "Agg")  # conf.py sets it by default
    conf = runpy.run_path(str(ROOT / "docs" / "conf.py"))
    assert conf["version"] == conf["release"] == "99.0.dev0"


def test_version_not_written_anywhere_else():
    quoted = re.compile(r"""["']v?""" + re.escape(__version__) + r"""["']""")
    sources = [ROOT / "pyproject.toml", ROOT / "tox.ini"]
    for folder in ("skmnist", "docs", "tests", "examples", "benchmarks"):
        sources += (ROOT / folder).rglob("*.py")
    copies = [
        str(path.relative_to(ROOT))
        for path in sources
        if path.is_file()
        and path != ROOT / "skmnist" / "_version.py"
        and quoted.search(path.read_text(encoding="utf-8"))
    ]
    assert copies == []
