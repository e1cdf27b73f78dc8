"""The one error a configuration raises (composition, validation, search space): its message names
the key. Its own module so that everything under `config/` can raise it without importing `compose`."""

from __future__ import annotations


class ConfigError(ValueError):
    """A composed configuration that does not fit the schema; the message names the key."""
