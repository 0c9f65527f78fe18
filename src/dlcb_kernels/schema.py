"""The throughput table's JSON Schema (data/table.schema.json, shipped with the package and
published in the README) and the checker the table loader runs it with: the subset of JSON
Schema that file uses (type, enum, const, minimum, exclusiveMinimum, required, properties,
additionalProperties, items, anyOf, $ref to $defs), so reading a table needs no extra package.
A number must also be finite (JSON has no NaN, but Python's json module reads one)."""

from __future__ import annotations

import functools
import json
import math
from importlib import resources

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


class SchemaError(ValueError):
    """A document that does not follow the schema; the message names the path of the bad field."""


@functools.cache
def table_schema() -> dict:
    return json.loads(resources.files("dlcb_kernels").joinpath("data/table.schema.json").read_text("utf-8"))


def check(doc, schema: dict | None = None, source: str = "table") -> None:
    """Raises SchemaError naming the first field of doc that breaks the schema (default: the
    table's)."""
    root = table_schema() if schema is None else schema
    error = _check(doc, root, root, "")
    if error is not None:
        path, message = error
        raise SchemaError(f"{source}: {path or 'the document'} {message}")


def _check(value, schema: dict, root: dict, path: str):
    """(path, message) of the first violation in value, or None."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return _check(value, root["$defs"][name], root, path)
    if "anyOf" in schema:
        errors = [_check(value, option, root, path) for option in schema["anyOf"]]
        if all(errors):
            return errors[0]
    if "const" in schema and value != schema["const"]:
        return path, f"must be {schema['const']!r}, got {_shown(value)}"
    if "enum" in schema and value not in schema["enum"]:
        return path, f"must be one of {', '.join(map(repr, schema['enum']))}, got {_shown(value)}"
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](value) for t in types):
            return path, f"must be {' or '.join(types)}, got {_shown(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return path, f"must be a finite number, got {value}"
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            return path, f"must be >= {schema['minimum']}, got {value}"
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            return path, f"must be > {schema['exclusiveMinimum']}, got {value}"
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                return path, f"lacks the field {key!r}"
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                error = _check(item, sub, root, f"{path}.{key}" if path else key)
                if error is not None:
                    return error
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            error = _check(item, schema["items"], root, f"{path}[{i}]")
            if error is not None:
                return error
    return None


def _shown(value) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."
