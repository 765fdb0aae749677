"""Reading YAML as configs need it: a file read as UTF-8 text, a mapping that names a key
twice refused (PyYAML would keep the last one silently), a float in exponent form read as
a float (1e-3), and a `--set KEY=VALUE` whose value is YAML. Every failure is one
`ConfigError` line naming the file and the line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


def read_yaml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(str(path), "", f"cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            str(path),
            "",
            f"not UTF-8 text (byte 0x{e.object[e.start]:02x} at "
            f"offset {e.start}); a config is a YAML text file",
        ) from None
    raw = _parse_yaml(text, str(path))
    if not isinstance(raw, dict):
        raise ConfigError(str(path), "", "must be a YAML mapping (name:, model:, ...)")
    return raw


class DuplicateKey(yaml.YAMLError):
    """A key given twice in one mapping: PyYAML keeps the last one silently, so a second
    `train:` block would replace the first whole and run an experiment nobody wrote."""

    def __init__(self, key, first: int, second: int):
        self.key, self.first, self.second = key, first, second
        super().__init__(f"key {key!r} is given twice, on lines {first} and {second}")


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that names a key twice (at any depth)."""


def _unique_mapping(loader: UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    lines: dict = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: merged keys may repeat
            continue
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            if key in lines:
                raise DuplicateKey(key, lines[key], line)
            lines[key] = line
        except TypeError:  # an unhashable key: construct_mapping says so
            break
    return loader.construct_mapping(node, deep=deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)
# YAML 1.1 (PyYAML) reads a float in exponent form without a dot or without a sign in its
# exponent (1e-3, 1.0e5) as a string; values are not converted (layers.Strict), so such a
# learning rate would be refused. They are floats here, as in YAML 1.2; quoted, a string.
UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _parse_yaml(text: str, source: str):
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader: no Python objects
    except DuplicateKey as e:
        raise ConfigError(source, f"line {e.second}", str(e)) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        raise ConfigError(source, where, f"not valid YAML: {getattr(e, 'problem', e)}") from None
    except RecursionError:
        raise ConfigError(
            source, "", "nested too deeply to read (a YAML structure thousands of levels deep)"
        ) from None


def parse_override(text: str) -> tuple[str, Any]:
    """`conv2.kernel=9` -> ("conv2.kernel", 9); the value is parsed as YAML."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError("--set", text, "expected KEY=VALUE, e.g. --set conv2.kernel=9")
    try:
        return key.strip(), yaml.load(value, Loader=UniqueKeyLoader)
    except DuplicateKey as e:
        raise ConfigError("--set", key.strip(), f"value {value[:80]!r}: {e}") from None
    except (yaml.YAMLError, RecursionError):
        raise ConfigError("--set", key.strip(), f"value {value[:80]!r} is not valid YAML") from None
