"""The integrations are leaves: the core imports no web framework, and an integration whose
framework is missing says which extra to install."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("framework", "module", "extra"),
    [
        ("flask", "sserelay.integrations.flask", "flask"),
        ("django", "sserelay.integrations.django", "django"),
        ("django", "sserelay.integrations.django.urls", "django"),
    ],
)
def test_integration_without_its_framework_names_the_extra(
    framework: str, module: str, extra: str
) -> None:
    """With the framework hidden, importing the integration fails with an ImportError that
    says `pip install 'sserelay[<extra>]'`."""
    done = run_python(
        f"import sys\nsys.modules[{framework!r}] = None\n"
        f"try:\n    import {module}\n"
        f"except ImportError as exc:\n    print(exc)\nelse:\n    print('imported')"
    )
    assert done.returncode == 0, done.stderr
    assert f"pip install 'sserelay[{extra}]'" in done.stdout


def test_the_core_and_the_shared_relay_import_no_framework() -> None:
    """Importing sserelay's server, CLI and the integrations' shared part loads neither Flask
    nor Django nor FastAPI."""
    done = run_python(
        "import sys\n"
        "import sserelay.cli, sserelay.web.app, sserelay.integrations.article_relay\n"
        "import sserelay.integrations.fastapi\n"
        "print(sorted({'flask', 'django', 'fastapi'} & set(sys.modules)))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
