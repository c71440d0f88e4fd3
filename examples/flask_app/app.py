"""The article's Flask app, rewritten on sserelay.

The article's version relays with `yield 'data: %s\n\n' % chunk`: a newline in the model's
text breaks the event, nothing marks the end, an upstream failure looks like a normal end, and
the page appends text as HTML. Here the same routes come from sserelay's Blueprint, and this
app keeps only what is its own.
"""

from __future__ import annotations

import flask

from sserelay.integrations.flask import create_blueprint

app = flask.Flask(__name__)
# GET / (the page), GET /completion, GET /completionChat, POST /completions/chat, configured
# from OPENAI_API_KEY, OPENAI_BASE_URL, SSERELAY_CHAT_MODEL, SSERELAY_COMPLETION_MODEL.
app.register_blueprint(create_blueprint())


@app.get("/health")
def health() -> dict[str, str]:
    """A route of the app's own, next to sserelay's."""
    return {"status": "ok"}
