"""The JSON log of a real run: one line per request and one per stream end, never the
prompt or a key; and a Server-Timing header on every response."""

from __future__ import annotations

import logging
import os
import re
import uuid
from typing import Any

import openai
import orjson
import pytest

from sserelay.observability import JsonFormatter, Telemetry
from sserelay.observability.context import RequestContext
from sserelay.observability.json_logging import log_fields
from sserelay.observability.middleware import _new_request_id
from tests.conftest import PROVIDER_KEY
from tests.gateway.conftest import wait_for
from tests.observability.conftest import Observed

TIMING = re.compile(r"sserelay;dur=\d+\.\d{3}, upstream;dur=(\d+\.\d{3})")


def test_one_line_per_request_and_per_stream_end(observed: Observed) -> None:
    """Eight requests, four of them streams (one abandoned and drained): exactly one request
    line for each and one stream line for each stream, with ids, key, model, ending, tokens
    and durations; no line anywhere holds the prompt, the client key or the provider key."""
    run = uuid.uuid4().hex[:8]
    secret = f"PROMPTTEXT{run}"
    ids = {name: f"{run}-{name}" for name in
           ("article", "gw_stream", "gw_whole", "abandoned", "start", "follow", "missing", "bad")}

    def rid(name: str) -> dict[str, str]:
        return {"X-Request-Id": ids[name]}

    with observed.client() as client:
        assert client.get("/completionChat", headers=rid("article"), params={
            "prompt": f"[[scenario: tokens=6]] {secret}"}).status_code == 200
        started = client.post("/v1/streams", headers=rid("start"), json={
            "messages": [{"role": "user", "content": f"[[scenario: tokens=4]] {secret}"}]})
        assert started.status_code == 201
        assert "[DONE]" in client.get(started.json()["url"], headers=rid("follow")).text
        assert client.get("/nothing-here", headers=rid("missing")).status_code == 404
        assert client.post("/completions/chat", headers=rid("bad"),
                           json={"prompt": ""}).status_code == 400
    with openai.OpenAI(base_url=observed.server.url + "/v1", api_key=observed.key) as sdk:
        messages: Any = [{"role": "user", "content": f"[[scenario: tokens=5]] {secret}"}]
        list(sdk.chat.completions.create(model="gpt-4o-mini", stream=True, messages=messages,
                                         extra_headers=rid("gw_stream")))
        sdk.chat.completions.create(model="gpt-4o-mini", messages=messages,
                                    extra_headers=rid("gw_whole"))
        long: Any = [{"role": "user", "content": f"[[scenario: tokens=30; rate=40]] {secret}"}]
        stream = sdk.chat.completions.create(model="gpt-4o-mini", stream=True, messages=long,
                                             extra_headers=rid("abandoned"))
        for _ in zip(range(3), stream, strict=False):
            pass
        stream.close()

    def ours(event: str) -> list[dict[str, Any]]:
        return [line for line in observed.lines()
                if line.get("event") == event and line["request_id"].startswith(run)]

    streams = wait_for(lambda: len(ours("stream")) == 4 and ours("stream"), "four stream lines")
    requests = wait_for(lambda: len(ours("request")) == 8 and ours("request"),
                        "eight request lines")
    assert sorted(line["request_id"] for line in requests) == sorted(ids.values())
    by_request = {line["request_id"]: line for line in streams}
    assert sorted(by_request) == sorted(ids[n] for n in
                                        ("article", "gw_stream", "abandoned", "start"))
    for line in streams:
        assert line["key_id"] == observed.key_id
        assert line["duration_ms"] >= 0 and line["ttft_ms"] is not None
    article = by_request[ids["article"]]
    assert (article["model"], article["ending"], article["completion_tokens"]) == (
        "fake-chat", "done", 6)
    abandoned = by_request[ids["abandoned"]]
    assert (abandoned["ending"], abandoned["completion_tokens"],
            abandoned["tokens_estimated"]) == ("aborted", 30, False)
    statuses = {line["request_id"]: line["status"] for line in requests}
    assert (statuses[ids["missing"]], statuses[ids["bad"]]) == (404, 400)

    text = observed.log.read_text(encoding="utf-8")
    for never in (secret, observed.key, PROVIDER_KEY):
        assert never not in text


def test_server_timing_on_every_response(observed: Observed) -> None:
    """Pages, files, errors, metrics and streams all carry Server-Timing (sserelay's own
    time and the upstream's) and their request id; only relayed requests waited upstream."""
    with observed.client() as client:
        replies = {
            "page": client.get("/simple"),
            "file": client.get("/static/sserelay.js"),
            "missing": client.get("/nothing-here"),
            "metrics": client.get("/metrics"),
            "stream": client.get("/completionChat", params={"prompt": "[[scenario: tokens=2]] x"}),
            "gateway": client.post("/v1/chat/completions", json={
                "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
        }
    waits = {}
    for name, reply in replies.items():
        found = TIMING.fullmatch(reply.headers.get("server-timing", ""))
        assert found, (name, reply.headers.get("server-timing"))
        assert re.fullmatch(r"[0-9a-f]{16}", reply.headers["x-request-id"])
        waits[name] = float(found.group(1))
    assert waits["page"] == waits["missing"] == waits["metrics"] == 0.0
    assert waits["stream"] > 0 and waits["gateway"] > 0


def test_generated_request_ids_are_distinct_also_in_a_forked_worker() -> None:
    """Request ids come from `random`, not `secrets`: they must still never repeat, within a
    process or between a process and a worker forked from it (the stdlib reseeds `random`
    in the child; a generator of our own would hand both the same sequence)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its ids, then exit without running pytest's teardown
        os.close(read_end)
        os.write(write_end, " ".join(_new_request_id() for _ in range(100)).encode())
        os._exit(0)
    os.close(write_end)
    ours = [_new_request_id() for _ in range(100)]
    with os.fdopen(read_end, "rb") as child:
        theirs = child.read().decode().split()
    os.waitpid(pid, 0)
    assert len(theirs) == 100
    assert all(re.fullmatch(r"[0-9a-f]{16}", rid) for rid in ours + theirs)
    assert len(set(ours + theirs)) == 200


@pytest.mark.parametrize("content", [False, True])
def test_prompt_text_is_logged_only_when_enabled(
    caplog: pytest.LogCaptureFixture, content: bool
) -> None:
    """[logging] content = true adds the prompt to the request line; by default it is not."""
    telemetry = Telemetry(metrics=False, log_content=content)
    ctx = RequestContext(telemetry, request_id="r1", method="GET", path="/completionChat")
    ctx.note_prompt([{"role": "user", "content": "tell me a secret"}])
    ctx.status = 200
    with caplog.at_level(logging.INFO, logger="sserelay.requests"):
        telemetry.request_ended(ctx)
    line = JsonFormatter().format(caplog.records[-1])
    assert ("tell me a secret" in line) is content
    assert '"request_id":"r1"' in line and '"status":200' in line


def test_each_line_carries_its_own_time() -> None:
    """Lines formatted in turn by one formatter each say the time of their own record."""
    formatter = JsonFormatter()
    times = []
    for created in (1700000000.25, 1700000000.5, 1700000061.0, 1700000000.75):
        record = logging.LogRecord("sserelay.requests", logging.INFO, __file__, 1, "request",
                                   None, None)
        record.created, record.msecs = created, (created % 1) * 1000
        times.append(orjson.loads(formatter.format(record))["time"])
    assert times == ["2023-11-14T22:13:20.250Z", "2023-11-14T22:13:20.500Z",
                     "2023-11-14T22:14:21.000Z", "2023-11-14T22:13:20.750Z"]


def test_log_fields_writes_the_line_logger_info_would(caplog: pytest.LogCaptureFixture) -> None:
    """The request and stream lines skip LogRecord's constructor, not logging: the same
    JSON as `logger.info(..., extra={"fields": ...})` but for the time, every attribute a
    handler's format string may name, and nothing when the level is off."""
    logger = logging.getLogger("sserelay.requests")
    fields = {"event": "request", "request_id": "r2", "status": 200}
    with caplog.at_level(logging.INFO, logger="sserelay.requests"):
        log_fields(logger, "request", fields)
        logger.info("request", extra={"fields": fields})
    fast, slow = caplog.records[-2:]
    formatter = JsonFormatter()
    lines = [orjson.loads(formatter.format(record)) for record in (fast, slow)]
    assert [{k: v for k, v in line.items() if k != "time"} for line in lines] == [
        {"level": "info", "logger": "sserelay.requests", "message": "request", **fields}
    ] * 2
    assert abs(fast.created - slow.created) < 60 and 0 <= fast.msecs < 1000
    classic = logging.Formatter(
        "%(asctime)s %(name)s %(levelname)s %(module)s %(filename)s:%(lineno)d %(funcName)s "
        "%(process)s %(thread)s %(relativeCreated)d %(message)s"
    )
    assert classic.format(fast).endswith(" request")
    with caplog.at_level(logging.WARNING, logger="sserelay.requests"):
        count = len(caplog.records)
        log_fields(logger, "request", fields)
        assert len(caplog.records) == count
