"""sserelay's configuration in one place: a TOML file, the environment over it, flags over
both (`sserelay serve --config FILE`, `sserelay config check|show`); see docs/operations.md."""

from __future__ import annotations

from sserelay.config.loading import Configuration, load_configuration
from sserelay.gateway.config import ConfigError

__all__ = ["ConfigError", "Configuration", "load_configuration"]
