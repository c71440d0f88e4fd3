"""GET /metrics, scraped with prometheus-client's own parser during and after real streams,
holds the counts those streams generated."""

from __future__ import annotations

import contextlib

import httpx
import openai
import pytest

from sserelay.observability.metrics import Metrics
from tests.gateway.conftest import wait_for
from tests.observability.conftest import Observed, marker, sample


def test_stream_counts_during_and_after_an_article_stream(observed: Observed) -> None:
    """While a stream runs it is active and started; after, it ended `done` and its chunks,
    first token, sampled gaps and tokens (by key and model) are counted."""
    before = observed.metrics()
    with observed.client() as client, client.stream(
        "GET", "/completionChat",
        params={"prompt": f"[[scenario: tokens=30; rate=20]] {marker()}"},
    ) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("id: ")
        during = observed.metrics()
        body = "".join(f"{line}\n" for line in lines)
    assert sample(during, "sserelay_active_streams") >= 1
    assert sample(during, "sserelay_streams_started_total", api="article") == (
        sample(before, "sserelay_streams_started_total", api="article") + 1)

    def ended() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        now = observed.metrics()
        done = sample(now, "sserelay_streams_ended_total", api="article", ending="done")
        return now if done == sample(before, "sserelay_streams_ended_total", api="article",
                                     ending="done") + 1 else None

    after = wait_for(ended, "the stream's end in /metrics")

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    events = body.count("\n\n")  # each event ends with a blank line
    assert grew("sserelay_relayed_chunks_total", api="article") == events == 31
    assert grew("sserelay_relayed_bytes_total", api="article") > 0
    assert grew("sserelay_time_to_first_token_seconds_count", api="article") == 1
    # Gaps between chunks 8-9, 16-17 and 24-25: one in eight, sampled.
    assert grew("sserelay_inter_chunk_seconds_count", api="article") == 3
    assert grew("sserelay_tokens_total", key=observed.key_id, model="fake-chat",
                kind="completion") == 30


def test_gateway_tokens_and_upstream_errors(observed: Observed) -> None:
    """A /v1 stream counts the upstream's tokens under its key and model; an upstream that
    answers 503 counts one error per try, by provider and status."""
    before = observed.metrics()
    with openai.OpenAI(base_url=observed.server.url + "/v1", api_key=observed.key,
                       max_retries=0) as client:
        list(client.chat.completions.create(
            model="gpt-4o", stream=True,
            messages=[{"role": "user", "content": f"[[scenario: tokens=12]] {marker()}"}]))
        with contextlib.suppress(openai.APIStatusError):
            client.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": f"[[scenario: status=503]] {marker()}"}])
    after = wait_for(
        lambda: (m := observed.metrics()) and sample(
            m, "sserelay_streams_ended_total", api="chat", ending="done") > sample(
            before, "sserelay_streams_ended_total", api="chat", ending="done") and m,
        "the gateway stream's end")

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("sserelay_streams_started_total", api="chat") == 1
    assert grew("sserelay_tokens_total", key=observed.key_id, model="gpt-4o",
                kind="completion") == 12
    assert grew("sserelay_tokens_total", key=observed.key_id, model="gpt-4o",
                kind="prompt") > 0
    assert grew("sserelay_upstream_errors_total", provider="openai", status="503") == 3


def test_resumes_replays_and_log_size(observed: Observed) -> None:
    """A reconnection after the end is counted (204), one mid-stream resumes and replays
    from the log, and the log's size is reported."""
    # EventSource reconnects to the same URL, prompt included, with Last-Event-ID.
    params = {"prompt": f"[[scenario: tokens=5]] {marker()}"}
    with observed.client() as client:
        reply = client.get("/completionChat", params=params)
        stream_id = reply.headers["x-sserelay-stream"]
        last = [line[4:] for line in reply.text.splitlines() if line.startswith("id: ")][-1]
        before = observed.metrics()
        ended = client.get("/completionChat", params=params, headers={"Last-Event-ID": last})
        assert ended.status_code == 204
        resumed = client.get("/completionChat", params=params,
                             headers={"Last-Event-ID": f"{stream_id}:2"})
        assert resumed.status_code == 200 and "[DONE]" in resumed.text
    after = observed.metrics()

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("sserelay_resumes_total", result="nothing_left") == 1
    assert grew("sserelay_resumes_total", result="resumed") == 1
    assert grew("sserelay_replays_total") == 1
    assert sample(after, "sserelay_stream_log_streams") >= 1
    assert sample(after, "sserelay_stream_log_entries") >= 6


def test_metrics_need_no_key_and_say_their_format(observed: Observed) -> None:
    """/metrics answers Prometheus' text format, also to a scraper without a client key."""
    reply = httpx.get(observed.server.url + "/metrics", timeout=10)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")


def test_labels_count_into_one_series_per_label_values() -> None:
    """`labels()` hands back the one series of its label values, however often asked."""
    metrics = Metrics()
    metrics.tokens.labels("k1", "m", "prompt").inc(2)
    metrics.tokens.labels("k1", "m", "prompt").inc(3)
    metrics.tokens.labels("k2", "m", "prompt").inc(7)
    rendered = metrics.render().decode()
    assert 'sserelay_tokens_total{key="k1",kind="prompt",model="m"} 5.0' in rendered
    assert 'sserelay_tokens_total{key="k2",kind="prompt",model="m"} 7.0' in rendered


def test_histogram_counts_a_value_on_a_bound_in_that_bound_and_renders_cumulative() -> None:
    """Prometheus' `le` is "less than or equal": 0.05 counts in le="0.05"; the rendered
    buckets are cumulative, +Inf is the count, and the sum is the values' sum."""
    metrics = Metrics()
    series = metrics.first_token.labels("chat")
    series.observe(0.05)
    series.observe_all([0.01, 0.3, 120.0])
    rendered = metrics.render().decode()
    name = "sserelay_time_to_first_token_seconds"
    assert f'{name}_bucket{{api="chat",le="0.025"}} 1.0' in rendered
    assert f'{name}_bucket{{api="chat",le="0.05"}} 2.0' in rendered
    assert f'{name}_bucket{{api="chat",le="0.25"}} 2.0' in rendered
    assert f'{name}_bucket{{api="chat",le="0.5"}} 3.0' in rendered
    assert f'{name}_bucket{{api="chat",le="60.0"}} 3.0' in rendered
    assert f'{name}_bucket{{api="chat",le="+Inf"}} 4.0' in rendered
    assert f'{name}_count{{api="chat"}} 4.0' in rendered
    assert f'{name}_sum{{api="chat"}} 120.36' in rendered


def test_counters_refuse_to_go_down_and_wrong_label_counts() -> None:
    """A counter only goes up, and a series needs exactly its metric's labels: both are
    errors in the code that counts, said at once."""
    metrics = Metrics()
    with pytest.raises(ValueError, match="only goes up"):
        metrics.requests.labels("200").inc(-1)
    with pytest.raises(ValueError, match="takes the labels"):
        metrics.streams_ended.labels("chat")


def test_metrics_without_labels_are_scraped_at_zero_before_they_move() -> None:
    """A fresh relay already shows its unlabelled series, so a dashboard sees 0, not
    nothing; the active-streams gauge goes both ways."""
    metrics = Metrics()
    rendered = metrics.render().decode()
    assert "sserelay_replays_total 0.0" in rendered
    assert "sserelay_active_streams 0.0" in rendered
    metrics.active_streams.inc()
    metrics.active_streams.inc()
    metrics.active_streams.dec()
    metrics.replays.inc()
    rendered = metrics.render().decode()
    assert "sserelay_active_streams 1.0" in rendered
    assert "sserelay_replays_total 1.0" in rendered
