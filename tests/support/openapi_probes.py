"""Do the OpenAPI document and the server agree on what a request body may hold?

For each operation with a request body, a body the server answers with 200 is changed one field
at a time: an empty string where the field may be a string, an empty list where it may be a
list, the spellings of a boolean the request decoder takes or refuses where it may be a
boolean, 0, -1 and integers spelled as strings (taken or refused) where it may be an integer,
"null" spelled as a string where it may be null but not a string, and the field left out. Each
changed body is checked against the document (JSON Schema 2020-12, the dialect of OpenAPI 3.1)
and sent: the document must accept exactly what the server accepts (2xx) and refuse what it
refuses (4xx).
Only these probes are sent, so a value refused for its meaning (an unknown model or task) never
counts against the document.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from jsonschema import Draft202012Validator

# Spellings of a boolean: those the decoder takes (true/false in any case, "1", "0", "-0",
# 1 and 0; "null" in any case where null is allowed), and some it refuses.
BOOLEAN_PROBES: tuple[Any, ...] = ("true", "False", "TRUE", "1", "0", "-0", 1, 0)
BOOLEAN_REFUSED: tuple[Any, ...] = ("yes", "on", "", "01", 2, -1, 0.5, "null", "NULL")
# Integers as strings: spellings msgspec's lax conversion reads as an integer, and some it
# refuses ("null" in any case only where null is allowed; a fraction or an exponent past
# 2**53). A field's minimum decides too: "0", "-0" and "-1" are under a minimum of 1.
INTEGER_PROBES: tuple[Any, ...] = ("3", "1e2", "1E+02", "5.0", "1.00e1", "0", "-0", "-1")
INTEGER_REFUSED: tuple[Any, ...] = (
    *("03", "+3", " 3", "3 ", "1.5", "1e-1", "0x10", "1_000", "three", "2.", "null", "NULL"),
    *("1e16", "9007199254740994.0"),
    *(2.5, True),
)
# "null" in any case, where a field may be null but not a string (a list, an object): the
# decoder takes it as null there (a string field keeps it as the string).
NULL_WORDS: tuple[Any, ...] = ("null", "NULL", "Null")
ABSENT = object()


class Client(Protocol):
    def post(self, url: str, *, json: Any) -> Any: ...


@dataclass(frozen=True)
class Probe:
    path: str
    field: str
    value: Any  # ABSENT: the field left out

    def body(self, base: dict[str, Any]) -> dict[str, Any]:
        changed = {k: v for k, v in base.items() if k != self.field}
        if self.value is not ABSENT:
            changed[self.field] = self.value
        return changed

    def __str__(self) -> str:
        shown = "left out" if self.value is ABSENT else f"= {self.value!r}"
        return f"POST {self.path} {self.field} {shown}"


def resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def types_of(schema: dict[str, Any], document: dict[str, Any]) -> set[str]:
    """The JSON types a schema names, through refs and anyOf/oneOf branches."""
    schema = resolve(schema, document)
    named = schema.get("type", [])
    found = set(named if isinstance(named, list) else [named])
    for key in ("anyOf", "oneOf"):
        for branch in schema.get(key, []):
            found |= types_of(branch, document)
    return found


def body_schema(document: dict[str, Any], path: str) -> dict[str, Any]:
    content = document["paths"][path]["post"]["requestBody"]["content"]
    return dict(content["application/json"]["schema"])


def validator(document: dict[str, Any], path: str) -> Draft202012Validator:
    """The request body's schema, its refs resolved in the document's components."""
    schema = {**body_schema(document, path), "components": document["components"]}
    return Draft202012Validator(schema)


def probes(document: dict[str, Any], path: str, base: dict[str, Any]) -> Iterator[Probe]:
    properties = resolve(body_schema(document, path), document).get("properties", {})
    for field, schema in properties.items():
        types = types_of(schema, document)
        values: list[Any] = []
        if "string" in types:
            values.append("")
        if "array" in types:
            values.append([])
        if "boolean" in types:
            values += [*BOOLEAN_PROBES, *BOOLEAN_REFUSED]
        if "integer" in types:
            values += [0, -1, *INTEGER_PROBES, *INTEGER_REFUSED]
        if "null" in types and not types & {"string", "boolean", "integer"}:
            values += NULL_WORDS
        if field in base:
            values.append(ABSENT)
        for value in values:
            yield Probe(path, field, value)


def disagreements(
    client: Client, document: dict[str, Any], bases: dict[str, dict[str, Any]]
) -> list[str]:
    """Every probe on which the document and the server disagree, with what each said."""
    found = []
    for path, base in bases.items():
        check = validator(document, path)
        assert check.is_valid(base), (path, [e.message for e in check.iter_errors(base)])
        response = client.post(path, json=base)
        assert response.status_code == 200, (path, response.status_code, response.text)
        for probe in probes(document, path, base):
            body = probe.body(base)
            response = client.post(path, json=body)
            status = response.status_code
            assert status < 300 or 400 <= status < 500, (str(probe), status, response.text)
            documented, served = check.is_valid(body), status < 300
            if documented != served:
                said = "accepts" if documented else "refuses"
                found.append(f"{probe}: the document {said} it, the server answers {status}")
    return found
