"""What an experiment is: a YAML config read, merged with its `base:`, overridden by
`--set` and validated (`loader`, with the one router of setting names), its schema
(`schema`), the layer types (`layers`) and shape inference without Keras (`shapes`).

Imports `core` only.
"""

from .loader import ConfigError, load_config

__all__ = ("ConfigError", "load_config")
