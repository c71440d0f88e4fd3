"""Which upstreams serve a model name, in fallback order.

A client's name is first resolved through the aliases (`fast` → `smollm2`), then routed:
an explicit `[routes]` entry, else every upstream that lists the model, else every upstream
that takes any name ("*"), each group in the configuration's order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sserelay.gateway.errors import GatewayError
from sserelay.providers.base import Provider

__all__ = ["Route", "Router"]

_MAX_ALIAS_DEPTH = 8


@dataclass(frozen=True, slots=True)
class Route:
    provider: Provider
    model: str
    """The name the upstream knows the model by."""


class Router:
    def __init__(
        self,
        providers: Sequence[Provider],
        models: Mapping[str, Sequence[str]],
        aliases: Mapping[str, str],
        routes: Mapping[str, Sequence[str]],
    ) -> None:
        """`models` maps each provider name to the model names it serves ("*": any)."""
        self.providers = list(providers)
        self._by_name = {p.name: p for p in providers}
        self._models = models
        self.aliases = dict(aliases)
        self._routes = routes

    def target(self, name: str) -> str:
        """`name` with aliases followed."""
        seen = 0
        while name in self.aliases and seen < _MAX_ALIAS_DEPTH:
            name = self.aliases[name]
            seen += 1
        return name

    def routes(self, name: str) -> list[Route]:
        """The upstreams for client model `name`, first choice first; 404 if none."""
        model = self.target(name)
        if model in self._routes:
            chosen = [self._by_name[n] for n in self._routes[model]]
        else:
            chosen = [p for p in self.providers if model in self._models[p.name]]
            if not chosen:
                chosen = [p for p in self.providers if "*" in self._models[p.name]]
        if not chosen:
            # OpenAI's words and code for a model that does not exist (a 404).
            raise GatewayError(
                404, f"The model `{name}` does not exist or you do not have access to it.",
                "model_not_found", param="model",
            )
        return [Route(p, model) for p in chosen]

    def known_names(self) -> list[str]:
        """Every name a client can use that the configuration spells out (no "*")."""
        names = dict.fromkeys(self.aliases)
        for provider in self.providers:
            names.update(dict.fromkeys(m for m in self._models[provider.name] if m != "*"))
        names.update(dict.fromkeys(self._routes))
        return list(names)

    def wildcard_providers(self) -> list[Provider]:
        return [p for p in self.providers if "*" in self._models[p.name]]
