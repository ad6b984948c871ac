"""Request bodies in the OpenAPI document as the server takes them, not only as typed.

Litestar documents a body from its type. The server is more lenient than that in one way and
stricter in others:

- Booleans. A body is converted as Litestar converts it (msgspec, strict=False), which takes for
  a boolean true or false in any case, "1", "0", "-0", the integers 1 and 0, and "null" in any
  case where null is allowed; clients built around forms and query strings send
  `"truncate": "0"`. Every top-level boolean of a request body is documented as that union.
- Integers. The same conversion takes for an integer a string that spells one as a JSON number
  ("3", "-2", "1e2", "1.0"; digits alone at any length, a fraction or exponent only while the
  float it is read as is at most 2**53, so documented up to 15 digits), and "null" in any case
  where null is allowed. A top-level field typed as an integer (and not also as a string, which
  would take the string as it is) is documented as the integer or such a string; a minimum
  applies to the string's value too. Fields a handler reads itself (a width:
  `integer_or_null`) take no strings and are left as they are.
- Null. A top-level field that may be null but takes no string (a list, an object) takes
  "null" in any case as null: documented as a string of that spelling.
- Handlers refuse some values with messages of their own (and of their family's shape): an
  empty string or list, a field required though its type has a default, a choice between
  fields, a width sent as anything but an integer. Each body type declares these beside its
  fields, as its `contract` (a BodyContract), applied here to the type's component.

tests/api/test_openapi.py sends the edge values to every route and checks that the document and
the server agree on each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import OpenAPI, OpenAPIType, Reference, Schema

# Keyword sets for BodyContract.fields, by the Schema attribute names Litestar writes out.
NOT_EMPTY: Mapping[str, Any] = {"min_length": 1}  # "" refused
NO_EMPTY_LIST: Mapping[str, Any] = {"min_items": 1}  # [] refused
# A field that is a string or a list: neither may be empty (minLength applies only to a string,
# minItems only to a list, so both sit on the union).
NEITHER_EMPTY: Mapping[str, Any] = {"min_length": 1, "min_items": 1}
AT_LEAST_ONE: Mapping[str, Any] = {"minimum": 1}


def integer_or_null(minimum: int | None = None) -> Mapping[str, Any]:
    """A field typed as any JSON value so that its handler can word the error (a width sent as
    a string or a float is refused with the model's range): documented as what it takes."""
    return {
        "any_of": [
            Schema(type=OpenAPIType.INTEGER, minimum=minimum),
            Schema(type=OpenAPIType.NULL),
        ]
    }


def sent(name: str) -> Schema:
    """A body that carries `name`, not null (for a choice of fields: BodyContract.one_of), of a
    field that takes no string: there "null" in any case is null too."""
    null = Schema(any_of=[Schema(type=OpenAPIType.NULL), null_word()])
    return Schema(required=[name], properties={name: Schema(schema_not=null)})


def named(name: str) -> Schema:
    """A body whose `name` is a non-empty string (BodyContract.any_of)."""
    return Schema(required=[name], properties={name: Schema(min_length=1)})


@dataclass(frozen=True)
class BodyContract:
    """What a route refuses in a body beyond its type, for the document."""

    # field -> Schema attributes to set on its schema (NOT_EMPTY, integer_or_null(1), ...)
    fields: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Refused when left out, though the type has a default (so the handler words the error).
    required: tuple[str, ...] = ()
    one_of: tuple[Schema, ...] = ()  # exactly one of these must hold
    any_of: tuple[Schema, ...] = ()  # at least one of these must hold


NO_CONTRACT = BodyContract()
# The strings msgspec's lax conversion reads as a boolean (or as null, where null is allowed).
_BOOLEAN_WORDS = "[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee]|1|-?0"
_NULL_WORD = "[Nn][Uu][Ll][Ll]"


def lenient_boolean(nullable: bool) -> list[Schema]:
    """The branches a boolean is documented with: the JSON boolean, 0 or 1, and the strings."""
    words = f"{_BOOLEAN_WORDS}|{_NULL_WORD}" if nullable else _BOOLEAN_WORDS
    return [
        Schema(type=OpenAPIType.BOOLEAN),
        Schema(type=OpenAPIType.INTEGER, enum=[0, 1]),
        Schema(type=OpenAPIType.STRING, pattern=f"^(?:{words})$"),
    ]


_ZERO_FRACTION = r"(?:\.0+)?"
# A spelling with a fraction or an exponent is read as a float first and taken only while that
# float is at most 2**53 (above, it is refused; at the edge, rounded): such spellings are
# documented up to 15 digits, below 10**15, where every float is the integer it spells.
FLOAT_DIGITS = 15


def _exponent_at_most(top: int) -> str:
    """An exponent of 0 to `top` (at most 14), leading zeros allowed."""
    if top == 0:
        return "0+"
    return f"0*[0-{top}]" if top <= 9 else f"0*(?:[0-9]|1[0-{top - 10}])"


def _float_spelled(minimum: int | None) -> list[str]:
    """Alternatives for an integer of at most FLOAT_DIGITS digits (and at least `minimum`)
    spelled with a zero fraction or a non-negative exponent: one per count of digits before
    the point, whose exponent may bring the digits to FLOAT_DIGITS."""
    spelled = []
    for digits in range(1, FLOAT_DIGITS + 1):
        head = "[1-9]" + (f"[0-9]{{{digits - 1}}}" if digits > 1 else "")
        exponent = _exponent_at_most(FLOAT_DIGITS - digits)
        if digits == 1 and minimum is not None:
            # One digit: below `minimum` unless an exponent of 1 or more scales it to 10.
            spelled.append(rf"[{minimum}-9]{_ZERO_FRACTION}(?:[eE]\+?0+)?")
            scaled = exponent.replace("[0-9]", "[1-9]")  # 0*(?:[0-9]|1[0-4]): 1 to 14
            spelled.append(rf"{head}{_ZERO_FRACTION}[eE]\+?{scaled}")
            continue
        spelled.append(rf"{head}{_ZERO_FRACTION}(?:[eE]\+?{exponent})?")
    return spelled


def integer_words(minimum: int | None) -> str:
    """A regex (unanchored alternatives) of the strings msgspec's lax conversion reads as an
    integer of at least `minimum`: digits, as many as may be; or JSON number spellings whose
    fraction is zeros and whose exponent is not negative, up to FLOAT_DIGITS digits (a negative
    exponent may still give an integer, "10e-1": not promised)."""
    if minimum is None:
        zero = rf"0{_ZERO_FRACTION}(?:[eE]\+?[0-9]+)?"
        return "-?(?:" + "|".join([zero, "[1-9][0-9]*", *_float_spelled(None)]) + ")"
    if not 1 <= minimum <= 9:
        raise TypeError(f"no string pattern for an integer of at least {minimum}")
    return "|".join([f"[{minimum}-9]", "[1-9][0-9]+", *_float_spelled(minimum)])


def lenient_integer(minimum: int | None, nullable: bool) -> list[Schema]:
    """The branches an integer field is documented with: the JSON integer and the strings."""
    words = integer_words(minimum)
    if nullable:
        words = f"{words}|{_NULL_WORD}"
    return [
        Schema(type=OpenAPIType.INTEGER, minimum=minimum),
        Schema(type=OpenAPIType.STRING, pattern=f"^(?:{words})$"),
    ]


def _field_kinds(body_type: type) -> dict[str, set[type]]:
    """Each field's wire name -> the msgspec.inspect kinds of its type (a union's members)."""
    info = msgspec.inspect.type_info(body_type)
    if not isinstance(info, msgspec.inspect.StructType):
        return {}
    kinds = {}
    for field_info in info.fields:
        kind = field_info.type
        types = kind.types if isinstance(kind, msgspec.inspect.UnionType) else (kind,)
        kinds[field_info.encode_name] = {type(t) for t in types}
    return kinds


def lenient_integer_fields(body_type: type) -> set[str]:
    """The wire names of `body_type`'s fields that msgspec converts from a string to an integer:
    typed as an integer, alone or in a union without a string (which would keep the string)."""
    return {
        name
        for name, kinds in _field_kinds(body_type).items()
        if msgspec.inspect.IntType in kinds and msgspec.inspect.StrType not in kinds
    }


def null_word_fields(body_type: type) -> set[str]:
    """The wire names of `body_type`'s fields that msgspec converts from "null" (any case) to
    None: typed as a union with None and without a string. A field typed as any value (read by
    its handler: `integer_or_null`) keeps the string."""
    inspect = msgspec.inspect
    return {
        name
        for name, kinds in _field_kinds(body_type).items()
        if inspect.NoneType in kinds and not kinds & {inspect.StrType, inspect.AnyType}
    }


def _with_lenient_integer(schema: Schema) -> Schema:
    branches = schema.any_of or [schema]
    integer = next((b for b in branches if _is(b, OpenAPIType.INTEGER)), None)
    if not isinstance(integer, Schema):
        return schema
    minimum = schema.minimum if schema.minimum is not None else integer.minimum
    minimum = int(minimum) if minimum is not None else None
    nullable = any(_is(branch, OpenAPIType.NULL) for branch in branches)
    others = [branch for branch in branches if branch is not integer]
    return Schema(
        any_of=[*lenient_integer(minimum, nullable), *others],
        default=schema.default,
        description=schema.description,
    )


def _is(schema: Schema | Reference, kind: OpenAPIType) -> bool:
    return isinstance(schema, Schema) and schema.type == kind


def _with_lenient_booleans(schema: Schema) -> Schema:
    if schema.type == OpenAPIType.BOOLEAN:
        return Schema(
            any_of=lenient_boolean(nullable=False),
            default=schema.default,
            description=schema.description,
        )
    branches = schema.any_of or []
    if any(_is(branch, OpenAPIType.BOOLEAN) for branch in branches):
        nullable = any(_is(branch, OpenAPIType.NULL) for branch in branches)
        schema.any_of = [
            new
            for branch in branches
            for new in (lenient_boolean(nullable) if _is(branch, OpenAPIType.BOOLEAN) else [branch])
        ]
    return schema


def null_word() -> Schema:
    """ "null" in any case, as a string: what a nullable field that takes no string (a list, an
    object) also reads as null."""
    return Schema(type=OpenAPIType.STRING, pattern=f"^(?:{_NULL_WORD})$")


def _with_null_words(schema: Schema) -> Schema:
    """A nullable field that takes no string: its union also takes the null word (booleans'
    and integers' strings already spell it)."""
    branches = schema.any_of or []
    if any(_is(b, OpenAPIType.NULL) for b in branches) and not any(
        _is(b, OpenAPIType.STRING) for b in branches
    ):
        schema.any_of = [*branches, null_word()]
    return schema


def _apply(
    component: Schema, contract: BodyContract, integers: set[str], nullable: set[str]
) -> None:
    properties = component.properties or {}
    for name, keywords in contract.fields.items():
        target = properties[name]  # KeyError: the contract names a field the type lacks
        if not isinstance(target, Schema):
            raise TypeError(f"{name}: a constraint on a reference is not supported")
        for keyword, value in keywords.items():
            setattr(target, keyword, value)
    if contract.required:
        component.required = sorted({*(component.required or []), *contract.required})
    if contract.one_of:
        component.one_of = list(contract.one_of)
    if contract.any_of:
        component.any_of = list(contract.any_of)
    for name, schema in properties.items():
        if isinstance(schema, Schema):
            lenient = _with_lenient_booleans(schema)
            lenient = _with_lenient_integer(lenient) if name in integers else lenient
            properties[name] = _with_null_words(lenient) if name in nullable else lenient


def document_request_bodies(
    document: OpenAPI, handlers: Iterable[tuple[str, HTTPRouteHandler]]
) -> None:
    """Apply each body type's contract, and the lenient booleans and integers, to its component
    (once per component: routes that share a body type share it)."""
    components = document.components.schemas if document.components else None
    bodies: dict[str, type] = {}
    for path, handler in handlers:
        data = handler.parsed_fn_signature.parameters.get("data")
        item = (document.paths or {}).get(path)
        if data is None or item is None or components is None:
            continue
        for method in handler.http_methods:
            operation = getattr(item, method.lower(), None)
            body = operation.request_body if operation else None
            media = body.content.get("application/json") if body and body.content else None
            if media is None or not isinstance(media.schema, Reference):
                continue
            name = media.schema.ref.rsplit("/", 1)[1]
            if bodies.setdefault(name, data.annotation) is not data.annotation:
                raise TypeError(f"component {name} stands for two body types")
    for name, body_type in bodies.items():
        component = components[name] if components else None
        if isinstance(component, Schema):
            contract = getattr(body_type, "contract", NO_CONTRACT)
            integers, nullable = lenient_integer_fields(body_type), null_word_fields(body_type)
            _apply(component, contract, integers, nullable)
