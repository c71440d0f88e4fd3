"""The gateway in front of the embedded SmolLM2 (llama.cpp's server): the zero-configuration
default, through the official SDKs."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from sserelay.keys import Database, Ledger
from sserelay.testing.procs import ServerProcess
from tests.gateway.conftest import wait_for


@pytest.fixture(scope="module")
def local_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    """`sserelay serve` with no OPENAI_* variables and no config: it starts SmolLM2 itself."""
    db = tmp_path_factory.mktemp("local") / "db.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    server = ServerProcess([sys.executable, "-m", "sserelay.cli", "serve", "--port", "{port}"],
                           startup_timeout=180)
    server.env = {**env, "PYTHONUNBUFFERED": "1", "SSERELAY_DB": str(db)}
    with server:
        yield server, db


@pytest.mark.timeout(300)
def test_openai_sdk_streams_from_the_local_model_by_alias(
    local_gateway: tuple[ServerProcess, Path],
) -> None:
    """The openai SDK streams from SmolLM2 by the alias `fast`, and the ledger records it."""
    server, db = local_gateway
    with openai.OpenAI(base_url=server.url + "/v1", api_key="unused-on-loopback") as client:
        stream = client.chat.completions.create(
            model="fast", max_tokens=16, stream=True,
            messages=[{"role": "user", "content": "What is the capital of France?"}])
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.strip()
    row = wait_for(lambda: Ledger(Database(db)).rows(), "the usage row")[-1]
    assert (row.model, row.upstream_model) == ("fast", "smollm2")
    assert row.completion_tokens > 0
    assert "gateway aliases: fast -> smollm2" in server.output()


@pytest.mark.timeout(300)
def test_anthropic_sdk_streams_from_the_local_model(
    local_gateway: tuple[ServerProcess, Path],
) -> None:
    """The anthropic SDK gets Anthropic events translated from llama.cpp's chat stream."""
    server, _ = local_gateway
    with anthropic.Anthropic(base_url=server.url, api_key="unused-on-loopback") as client, \
            client.messages.stream(model="smollm2", max_tokens=16, messages=[
                {"role": "user", "content": "Say hello."}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.strip() and final.usage.output_tokens > 0
