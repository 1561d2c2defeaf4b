"""Errors shared across the domain package (kept apart so any module can raise them without import cycles)."""


class ConfigError(ValueError):
    """The configuration is wrong; the message names the cluster and the field."""
