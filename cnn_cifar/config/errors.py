"""A user's mistake in a config as one line: `ConfigError` (file, field path, what is
allowed) and the translation of a pydantic error into it, with layers named by their
names, the keys a mapping allows and the value given where a type was wrong:
``configs/x.yaml: model.layers[2] (conv2).kernel: Input should be greater than 0``."""

from __future__ import annotations

import difflib
import re

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ..core.vocabulary import UserError
from .layers import LAYER_TYPES, layer_names, settable_fields
from .schema import Config


class ConfigError(UserError):
    """A user mistake in a config; str() is one line: file, field path, what is allowed."""

    def __init__(self, source: str, field: str, message: str):
        self.source, self.field, self.message = source, field, message
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {message}")


def first_error(e: ValidationError) -> ErrorDetails:
    """The one error of a validation to report: an unknown key before any other, since a
    misspelt key (`kernal`) also leaves the field it meant (`kernel`) missing, and the
    missing field alone would not show the typo."""
    errors = e.errors()
    return next((err for err in errors if err["type"] == "extra_forbidden"), errors[0])


def did_you_mean(word: str, allowed) -> str:
    """` (did you mean kernel?)` where one allowed name is close to a mistyped `word`."""
    near = difflib.get_close_matches(word, list(allowed), n=1)
    return f" (did you mean {near[0]}?)" if near else ""


def describe(err: ErrorDetails, raw: dict) -> tuple[str, str]:
    """pydantic error -> (field path with layer names, message with what is allowed)."""
    loc = list(err["loc"])
    parts: list[str] = []
    i = 0
    while i < len(loc):
        item = loc[i]
        if isinstance(item, int):
            parts[-1] += f"[{item}]"
            if parts[-1].startswith("layers["):
                name = _raw_layer_name(raw, item)
                if name:
                    parts[-1] += f" ({name})"
                if i + 1 < len(loc) and loc[i + 1] in LAYER_TYPES:
                    i += 1  # skip the union tag pydantic adds
        else:
            parts.append(str(item))
        i += 1
    field = ".".join(parts)
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(err, raw)
        msg = f"unknown key{did_you_mean(str(err['loc'][-1]), allowed)}; allowed: {', '.join(allowed)}"
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        msg = f"unknown layer type; allowed: {', '.join(LAYER_TYPES)}"
    elif kind == "missing":
        msg = "required field is missing"
    elif kind in _WRONG_TYPE:
        msg = f"{msg}, not {_given(err['input'])}"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return field, msg


# a value of another type than its field's (strict mode: no bool or string read as a number)
_WRONG_TYPE = {"int_type", "float_type", "bool_type", "string_type"}
_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


def _given(value) -> str:
    """What was given instead, as a config's author wrote it."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()} (YAML reads yes, no, on, off, true and false as booleans)"
    if isinstance(value, str):
        quoted = " (a number in quotes is a string: write it without quotes)" if _NUMBER.match(value) else ""
        return f"the string {value[:80]!r}{quoted}"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    return "a list" if isinstance(value, list) else f"a {type(value).__name__}"


def _raw_layer_name(raw: dict, index: int) -> str | None:
    layers = raw.get("model", {}).get("layers") if isinstance(raw.get("model"), dict) else None
    if isinstance(layers, list) and index < len(layers) and isinstance(layers[index], dict):
        return layer_names(layers)[index]
    return None


def _allowed_keys(err: ErrorDetails, raw: dict) -> list[str]:
    loc = list(err["loc"][:-1])
    if loc[:2] == ["model", "layers"] and len(loc) >= 4:
        return ["name", *settable_fields(str(loc[3])), "type"]
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        ann = field.annotation if field else None
        ann = next(
            (a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)),
            ann,
        )
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            break
        model = ann
    keys = list(model.model_fields)
    return keys + (["base"] if model is Config else [])
