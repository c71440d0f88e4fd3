"""Shared SSE test vectors (shared/reference/vectors/parser_vectors.json), parametrized by name.

The vectors live outside the repository: beside this checkout in development (/work/main next to
/work/shared) and beside the fresh clone in CI (``<clone>/../shared``). A missing file fails the
run; skipping would turn the conformance suite green by deleting it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

VECTORS_PATH = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "reference"
    / "vectors"
    / "parser_vectors.json"
).resolve()


@cache
def load_vectors() -> dict[str, Any]:
    """Read the vectors file, failing the run with the expected location if it is missing."""
    if not VECTORS_PATH.is_file():
        pytest.fail(
            f"SSE test vectors not found at {VECTORS_PATH}: the shared/ folder must sit beside "
            "the repository checkout (<clone>/../shared/reference/vectors/parser_vectors.json)",
            pytrace=False,
        )
    vectors: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    return vectors


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize the vector fixtures: one test per case, named after the case."""
    fixtures: dict[str, Callable[[], list[dict[str, Any]]]] = {
        "decoder_case": lambda: load_vectors()["cases"],
        "chunked_case": lambda: [c for c in load_vectors()["cases"] if "chunks" in c],
        "encoder_case": lambda: load_vectors()["encoder_cases"]["cases"],
        "line_split_case": lambda: [
            c for c in load_vectors()["encoder_cases"]["cases"] if "line_split_encoding" in c
        ],
        "json_case": lambda: [
            c for c in load_vectors()["encoder_cases"]["cases"] if "json_encoding" in c
        ],
    }
    for fixture, select in fixtures.items():
        if fixture in metafunc.fixturenames:
            cases = select()
            metafunc.parametrize(fixture, cases, ids=[case["name"] for case in cases])


@pytest.fixture
def vectors() -> dict[str, Any]:
    """The whole vectors file, for tests that pick cases by name (limit_cases)."""
    return load_vectors()
