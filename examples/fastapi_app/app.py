"""An existing FastAPI app with sserelay mounted in it: the article's endpoints and page, plus
everything else `sserelay serve` answers (resumable streams, /v1/streams), in one process."""

from __future__ import annotations

from fastapi import FastAPI

from sserelay.integrations.fastapi import mount_relay

app = FastAPI()


@app.get("/health")
def health() -> dict[str, str]:
    """A route of the app's own; defined before the mount, which answers everything else."""
    return {"status": "ok"}


# Configured from OPENAI_API_KEY, OPENAI_BASE_URL, SSERELAY_CHAT_MODEL, ...
mount_relay(app)
