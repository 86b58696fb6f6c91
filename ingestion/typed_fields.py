"""The fields the staging models read from the large Stripe lists, written by the loads as
typed columns beside the payload.

Parsing every payload is most of a first dbt build's work on a large account (at 1M charges,
2.4 GB of charge JSON). For the lists named in the dbt project's `stripe_fields` variable
(`dbt_project/dbt_project.yml`, the one place these fields are declared), each raw row also
carries one typed column per field (`field_<path>`, e.g. `field_metadata_resourceid`) and
`fields_version`, the fingerprint of the declaration it was written with. The staging
models (the `stripe_object_state` macro) read the typed columns of the rows written with
the current declaration and parse the payload of every other row: rows loaded before a field
was declared, objects carried by events, and objects with a value the columns could not hold
as the payload's parse would (a row is then written without typed values, and parsed).

The payload stays the object whole; the typed columns are a copy of a few of its fields.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml
from dlt.common.normalizers.naming.snake_case import NamingConvention

DBT_PROJECT_FILE = Path(__file__).resolve().parent.parent / "dbt_project" / "dbt_project.yml"
VERSION_COLUMN = "fields_version"

# The field types a typed column holds exactly as the payload's parse gives them, with the
# Python types of a parsed JSON value that convert without loss (bool is not an int here).
_TYPES: dict[str, tuple[pa.DataType, type]] = {
    "varchar": (pa.string(), str),
    "bigint": (pa.int64(), int),
    "boolean": (pa.bool_(), bool),
}
_INT64 = (-(2**63), 2**63 - 1)


class FieldsDeclarationError(ValueError):
    """The `stripe_fields` variable of the dbt project declares what cannot be typed."""


@dataclass(frozen=True)
class TypedFields:
    """The declared fields of one Stripe list: each field's path in the object and type, and
    `values`, which reads them from an object."""

    list_name: str
    paths: tuple[tuple[str, ...], ...]
    types: tuple[str, ...]
    version: str
    # The object's declared fields, or None when one of them is not of its declared type (a
    # string where an object is declared, a float for a bigint, ...): that row is then
    # written without typed values, and staged from its payload.
    values: Callable[[dict[str, Any]], tuple | None] = field(repr=False, compare=False)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(column_name(path) for path in self.paths)

    def arrow_fields(self) -> list[pa.Field]:
        """The typed columns, then `fields_version`, as Arrow fields."""
        typed = [pa.field(c, _TYPES[t][0]) for c, t in zip(self.columns, self.types, strict=True)]
        return [*typed, pa.field(VERSION_COLUMN, pa.string())]


def _values_function(structure: dict[str, Any]) -> Callable[[dict[str, Any]], tuple | None]:
    """A function reading the declared fields of an object, written out for the structure:
    the load calls it once per object (3M times at 1M charges), and straight-line code
    takes about half the time of a loop over the paths (docs/benchmarks.md)."""
    lines = ["def values(o):"]
    leaves: list[str] = []
    parents = iter(range(1_000_000))

    def read(structure: dict[str, Any], parent: str, indent: str) -> None:
        for key, kind in structure.items():
            if isinstance(kind, dict):
                obj = f"p{next(parents)}"
                first = len(leaves)
                inner = [f"v{first + i}" for i in range(len(_leaves(kind)))]
                lines.append(f"{indent}{obj} = {parent}.get({key!r})")
                lines.append(f"{indent}if {obj} is None:")
                lines.append(f"{indent}    {' = '.join(inner)} = None")
                lines.append(f"{indent}elif type({obj}) is not dict:")
                lines.append(f"{indent}    return None")
                lines.append(f"{indent}else:")
                read(kind, obj, indent + "    ")
                continue
            value = f"v{len(leaves)}"
            leaves.append(value)
            wrong = f"type({value}) is not {_TYPES[kind][1].__name__}"
            if kind == "bigint":
                wrong += f" or not {_INT64[0]} <= {value} <= {_INT64[1]}"
            lines.append(f"{indent}{value} = {parent}.get({key!r})")
            lines.append(f"{indent}if {value} is not None and ({wrong}):")
            lines.append(f"{indent}    return None")

    read(structure, "o", "    ")
    lines.append(f"    return ({', '.join(leaves)},)")
    namespace: dict[str, Any] = {}
    # Made only from the declaration's keys (as literals) and the names above.
    exec("\n".join(lines), namespace)
    return namespace["values"]


def column_name(path: tuple[str, ...]) -> str:
    """The typed column of a field: `field_` and its path, lowercased (the staging macro
    names it the same way)."""
    return "field_" + "_".join(path).lower()


def _leaves(structure: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple]:
    leaves: list[tuple] = []
    for key, kind in structure.items():
        path = (*prefix, key)
        if isinstance(kind, dict):
            leaves.extend(_leaves(kind, path))
        elif isinstance(kind, str) and kind in _TYPES:
            leaves.append((path, kind))
        else:
            raise FieldsDeclarationError(
                f"stripe_fields: {'.'.join(path)} is declared {kind!r}; a typed field is one "
                f"of {', '.join(_TYPES)}, or an object of them (lists are parsed by staging)"
            )
    return leaves


def declaration_version(structure: dict[str, Any]) -> str:
    """The fingerprint of one list's declaration, as the staging macro computes it
    (`local_md5(tojson(fields, sort_keys=true))`)."""
    return hashlib.md5(json.dumps(structure, sort_keys=True).encode()).hexdigest()


def parse_declaration(declared: dict[str, Any]) -> dict[str, TypedFields]:
    """Each list's `TypedFields` from the `stripe_fields` variable's value."""
    naming = NamingConvention()
    out: dict[str, TypedFields] = {}
    if not isinstance(declared, dict):
        raise FieldsDeclarationError("stripe_fields: expected a mapping of Stripe lists")
    for list_name, structure in declared.items():
        if not isinstance(structure, dict) or not structure:
            raise FieldsDeclarationError(f"stripe_fields: {list_name} declares no fields")
        leaves = _leaves(structure)
        fields = TypedFields(
            list_name,
            tuple(path for path, _ in leaves),
            tuple(kind for _, kind in leaves),
            declaration_version(structure),
            _values_function(structure),
        )
        columns = fields.columns
        # dlt would rename a column that is not already in its naming convention's form.
        for column in columns:
            if naming.normalize_identifier(column) != column:
                raise FieldsDeclarationError(
                    f"stripe_fields: the column {column!r} of {list_name} is not a plain name"
                )
        if len(set(columns)) != len(columns):
            raise FieldsDeclarationError(f"stripe_fields: two fields of {list_name} share a column")
        out[list_name] = fields
    return out


@cache
def declared_fields() -> dict[str, TypedFields]:
    """The typed fields of each list, from the dbt project's `stripe_fields` variable."""
    try:
        with open(DBT_PROJECT_FILE, encoding="utf-8") as f:
            project = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as err:
        raise FieldsDeclarationError(
            f"The dbt project file {DBT_PROJECT_FILE} (its stripe_fields are the fields the "
            f"loads type) cannot be read: {err}"
        ) from err
    return parse_declaration((project.get("vars") or {}).get("stripe_fields") or {})
