"""What an experiment is: a YAML config read (`yaml_io`, refusing a key given twice),
merged with its `base:`, overridden by `set:` and `--set` and validated (`loader`),
settings addressed by name (`names`, the one router of setting names), a mistake as one
line (`errors`), its schema (`schema`), the layer types (`layers`) and shape inference
without Keras (`shapes`).

Imports `core` only.
"""

from .errors import ConfigError
from .loader import load_config

__all__ = ("ConfigError", "load_config")
