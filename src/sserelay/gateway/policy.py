"""What a client key may ask for, applied to the request body in the client's own API format.

Per key (`KeyPolicy`): the models it may use, a cap on output tokens (a larger request is
clamped, a request without one gets the cap), which request fields pass (others dropped or
refused), and a system prompt that is always sent first. Applied before any translation, so
the same rules hold whichever upstream serves the model.
"""

from __future__ import annotations

from typing import Any

from sserelay.gateway.errors import GatewayError
from sserelay.keys.store import KeyPolicy
from sserelay.providers.base import Api

__all__ = ["ESSENTIAL_PARAMS", "apply_policy", "check_model"]

ESSENTIAL_PARAMS: dict[Api, frozenset[str]] = {
    "chat": frozenset({"model", "messages", "stream", "stream_options",
                       "max_tokens", "max_completion_tokens"}),
    "completions": frozenset({"model", "prompt", "stream", "stream_options", "max_tokens"}),
    "responses": frozenset({"model", "input", "instructions", "stream", "max_output_tokens"}),
    "messages": frozenset({"model", "messages", "system", "stream", "max_tokens"}),
}
"""Fields every key may send: without them the request means nothing."""

_CAP_FIELDS: dict[Api, tuple[str, ...]] = {
    "chat": ("max_tokens", "max_completion_tokens"),
    "completions": ("max_tokens",),
    "responses": ("max_output_tokens",),
    "messages": ("max_tokens",),
}


def check_model(policy: KeyPolicy, requested: str, target: str) -> None:
    """403 unless the key may use the name it asked for (or what that alias points to)."""
    if not (policy.allows_model(requested) or policy.allows_model(target)):
        raise GatewayError(
            403, f"This key may not use the model `{requested}`.", "model_not_allowed",
            param="model", type="permission_error",
        )


def apply_policy(policy: KeyPolicy, api: Api, body: dict[str, Any]) -> dict[str, Any]:
    """A copy of `body` that obeys `policy`; GatewayError(400) where it cannot be made to."""
    body = dict(body)
    if policy.params is not None:
        allowed = ESSENTIAL_PARAMS[api].union(policy.params)
        for name in [k for k in body if k not in allowed]:
            if policy.on_disallowed_param == "refuse":
                raise GatewayError(
                    400, f"The parameter `{name}` is not allowed for this key.",
                    "parameter_not_allowed", param=name,
                )
            del body[name]
    if policy.max_tokens is not None:
        _clamp(body, _CAP_FIELDS[api], policy.max_tokens)
    if policy.system_prompt:
        _add_system_prompt(api, body, policy.system_prompt)
    return body


def _clamp(body: dict[str, Any], fields: tuple[str, ...], cap: int) -> None:
    present = [f for f in fields if body.get(f) is not None]
    for name in present:
        value = body[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise GatewayError(
                400, f"`{name}` must be a positive integer.", "invalid_value", param=name
            )
        body[name] = min(value, cap)
    if not present:
        body[fields[0]] = cap


def _add_system_prompt(api: Api, body: dict[str, Any], prompt: str) -> None:
    # The key's prompt goes first; the client's own instructions stay, after it, so they
    # can add to it but never remove it.
    if api == "chat":
        messages = body.get("messages")
        if isinstance(messages, list):
            body["messages"] = [{"role": "system", "content": prompt}, *messages]
    elif api == "messages":
        system = body.get("system")
        blocks: list[Any] = [{"type": "text", "text": prompt}]
        if isinstance(system, str) and system:
            blocks.append({"type": "text", "text": system})
        elif isinstance(system, list):
            blocks.extend(system)
        body["system"] = blocks
    elif api == "responses":
        theirs = body.get("instructions")
        body["instructions"] = prompt
        if isinstance(theirs, str) and theirs:
            given = body.get("input")
            items = [{"role": "user", "content": given}] if isinstance(given, str) else given
            body["input"] = [{"role": "developer", "content": theirs}, *(items or [])]
    else:
        body["prompt"] = _prefix_prompt(body.get("prompt"), prompt)


def _prefix_prompt(given: object, prompt: str) -> object:
    if isinstance(given, str):
        return f"{prompt}\n\n{given}"
    if isinstance(given, list) and all(isinstance(p, str) for p in given):
        return [f"{prompt}\n\n{p}" for p in given]
    raise GatewayError(
        400, "This key has a system prompt, so `prompt` must be text, not token ids.",
        "invalid_prompt", param="prompt",
    )
