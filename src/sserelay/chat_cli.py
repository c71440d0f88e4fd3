"""`sserelay chat`: ask from a terminal and watch the answer arrive.

    sserelay chat "What are server-sent events?"               # the embedded local model
    sserelay chat --url http://127.0.0.1:8000 --key srk-... "Hi"  # a running sserelay
    sserelay chat --url http://127.0.0.1:8000                   # interactive: a conversation

Against a running sserelay it streams `/v1/chat/completions`, as the openai SDK would; with
no `--url` it starts the embedded SmolLM2 model as `sserelay serve` does and asks it
directly. The text is written to the terminal as it is generated.

Ctrl-C while an answer streams stops it: the connection is closed, so sserelay closes the
upstream request (or, with `abandoned_streams = "drain"`, reads it to its end for the usage
only). In the interactive mode Ctrl-C returns to the prompt; Ctrl-D or an empty line ends.
Blocking reads (http.client, upstream/sync_client.py) keep this simple: SIGINT interrupts a
read where it waits.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Generator
from typing import Any, TextIO

import orjson

from sserelay.settings import LOCAL_MODEL_NAME
from sserelay.upstream.errors import UpstreamError
from sserelay.upstream.sync_client import SyncOpenAIUpstream
from sserelay.upstream.watchdog import Timeouts

__all__ = ["add_chat_command", "answer_deltas"]

STOPPED = "[stopped]"


def add_chat_command(sub: Any) -> None:
    """Add `chat` to the `sserelay` command's subparsers."""
    chat = sub.add_parser(
        "chat", help="ask a question and stream the answer into the terminal",
        description="Stream an answer into the terminal as it is generated: from a running "
        "sserelay (--url), or else from the embedded local model. Without a question, "
        "an interactive conversation. Ctrl-C stops an answer.",
    )
    chat.add_argument("question", nargs="?", help="the question; omit for interactive mode")
    chat.add_argument("--url", metavar="URL",
                      help="a running sserelay, e.g. http://127.0.0.1:8000 (default: start "
                      "the embedded local model)")
    chat.add_argument("--key", metavar="KEY",
                      help="an sserelay client key (default: $SSERELAY_API_KEY; none is "
                      "needed on the same machine while no key exists)")
    chat.add_argument("--model", help=f"the model to ask (default: {LOCAL_MODEL_NAME} for "
                      "the local model, else the first the server lists)")
    chat.add_argument("--system", metavar="TEXT", help="a system prompt, sent first")
    chat.add_argument("--max-tokens", type=int, default=512, metavar="N",
                      help="the longest answer, in tokens (default: 512)")
    chat.set_defaults(func=_chat)


def answer_deltas(upstream: SyncOpenAIUpstream, body: dict[str, Any]) -> Generator[str, None, None]:
    """The answer's text pieces as they arrive; closing the generator closes the request."""
    with upstream.stream("/chat/completions", body) as stream:
        for event in stream.events():
            if event.data == "[DONE]":
                return
            chunk = orjson.loads(event.data)
            if isinstance(chunk, dict) and chunk.get("error"):
                error = chunk["error"]
                message = error.get("message") if isinstance(error, dict) else str(error)
                raise UpstreamError("upstream_error", str(message))
            for choice in chunk.get("choices") or ():
                text = (choice.get("delta") or {}).get("content")
                if text:
                    yield text


def _first_model(base_url: str, key: str | None) -> str:
    """The first name GET /v1/models lists, else the local model's alias `fast`."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(base_url + "/models")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            names = [m["id"] for m in orjson.loads(reply.read()).get("data", [])]
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError):
        names = []
    return names[0] if names else "fast"


def _ask(upstream: SyncOpenAIUpstream, messages: list[dict[str, str]], args: argparse.Namespace,
         out: TextIO) -> str | None:
    """Stream one answer to `out`; its text, or None if Ctrl-C stopped it."""
    body = {"model": args.model, "messages": messages, "stream": True,
            "max_tokens": args.max_tokens}
    pieces: list[str] = []
    deltas = answer_deltas(upstream, body)
    try:
        for text in deltas:
            pieces.append(text)
            out.write(text)
            out.flush()
    except KeyboardInterrupt:
        deltas.close()  # closes the connection: the server sees the client leave
        out.write("\n")
        print(STOPPED, file=sys.stderr, flush=True)
        return None
    finally:
        deltas.close()
    out.write("\n")
    out.flush()
    return "".join(pieces)


def _chat(args: argparse.Namespace) -> int:
    local = None
    if args.url:
        base_url = args.url.rstrip("/") + "/v1"
        key = args.key or os.environ.get("SSERELAY_API_KEY")
        args.model = args.model or _first_model(base_url, key)
    else:
        from sserelay.upstream.local_model import LocalModel, LocalModelError

        local = LocalModel()
        print("sserelay: starting the local model SmolLM2-135M-Instruct (llama.cpp)...",
              file=sys.stderr, flush=True)
        try:
            local.start()
        except LocalModelError as exc:
            print(f"sserelay: {exc}", file=sys.stderr)
            return 1
        base_url, key = local.base_url, None
        args.model = args.model or LOCAL_MODEL_NAME
    upstream = SyncOpenAIUpstream(base_url, key, timeouts=Timeouts(first_token=300, idle=120,
                                                                   total=3600),
                                  name="sserelay")
    history = [{"role": "system", "content": args.system}] if args.system else []
    try:
        if args.question:
            answer = _ask(upstream, [*history, {"role": "user", "content": args.question}],
                          args, sys.stdout)
            return 130 if answer is None else 0
        return _interactive(upstream, history, args)
    except UpstreamError as exc:
        print(f"sserelay chat: {exc.message}", file=sys.stderr)
        return 1
    finally:
        if local is not None:
            local.stop()


def _interactive(upstream: SyncOpenAIUpstream, history: list[dict[str, str]],
                 args: argparse.Namespace) -> int:
    print(f"Chatting with {args.model}. Ctrl-C stops an answer; an empty line or Ctrl-D ends.",
          file=sys.stderr, flush=True)
    while True:
        try:
            question = input("you> ")
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            return 0
        if not question.strip():
            return 0
        history.append({"role": "user", "content": question})
        answer = _ask(upstream, history, args, sys.stdout)
        if answer is None:
            history.pop()  # a stopped answer is not part of the conversation
        else:
            history.append({"role": "assistant", "content": answer})
