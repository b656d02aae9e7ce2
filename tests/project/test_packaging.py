"""pyproject.toml installs without setuptools' licence deprecation warnings.

The warnings come from setuptools applying the [project] table; running that same step on
a copy of our pyproject.toml shows them without building anything.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_licence_metadata_is_an_spdx_expression_without_deprecation_warnings(tmp_path, monkeypatch):
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip("setuptools < 77 predates SPDX licence expressions")
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = apply_configuration(Distribution(), "pyproject.toml")
    licence = [str(w.message).splitlines()[0] for w in caught if "licen" in str(w.message).lower()]
    assert not licence, licence
    assert dist.metadata.license_expression == "MIT"
