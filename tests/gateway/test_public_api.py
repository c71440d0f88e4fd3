"""The gateway's packages export what their `__all__` lists, and nothing is missing."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize(
    "package", ["sserelay.gateway", "sserelay.keys", "sserelay.providers", "sserelay.translation"]
)
def test_all_names_resolve(package: str) -> None:
    """Every name in `__all__` exists, once."""
    module = importlib.import_module(package)
    names = module.__all__
    assert len(names) == len(set(names))
    for name in names:
        assert getattr(module, name) is not None
