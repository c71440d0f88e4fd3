"""The baseline: a relay written the way the tutorial writes it, Flask and the openai SDK.

Served by the benchmark as the tutorial serves it, Flask's own threaded server (werkzeug, one
thread per request): ``flask --app sserelay.bench.naive_relay run --with-threads``. Only two
things differ from the tutorial's code, both needed to benchmark it at all: the SDK's current
(1.x+) spelling, and the prompt read from ``?prompt=`` rather than fixed to "Hello world", so
the fake upstream's scenario prefix reaches it. Its defects (no escaping of newlines in the
text, no end marker, no error handling) are kept on purpose: this is what is measured against.
"""

from __future__ import annotations

from collections.abc import Iterator

import flask
import openai

app = flask.Flask(__name__)
# Module level, like the tutorial's `openai.api_key = ...`: one client (and one connection
# pool) for the process, configured from OPENAI_API_KEY and OPENAI_BASE_URL.
client = openai.OpenAI()


@app.route("/completionChat", methods=["GET"])
def completion_chat() -> flask.Response:
    prompt = flask.request.args.get("prompt", "Hello world")

    def stream() -> Iterator[str]:
        completion = client.chat.completions.create(
            model="gpt-3.5-turbo",
            messages=[{"role": "user", "content": prompt}],
            stream=True,
        )
        for line in completion:
            chunk = line.choices[0].delta.content if line.choices else None
            if chunk:
                yield "data: %s\n\n" % chunk  # noqa: UP031 -- the tutorial's line, verbatim

    return flask.Response(stream(), mimetype="text/event-stream")
