"""The OpenAPI document: /openapi.json and /docs answer, every response of every route has a
typed schema (a schema-driven fuzzer checks responses against it), and every request body says
what the server takes and refuses (tests/support/openapi_probes.py)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from PIL import Image

from tests.support.image_api import data_url
from tests.support.openapi_probes import disagreements
from tools.gateway_server import GatewayServer

METHODS = {"get", "post", "put", "delete", "patch", "head"}


@pytest.fixture(scope="module")
def document(server: GatewayServer) -> dict[str, Any]:
    with server.client() as client:
        response = client.get("/openapi.json")
        assert response.status_code == 200, response.text
        same = client.get("/docs/openapi.json")
        assert same.status_code == 200
        assert same.json() == response.json()
        return response.json()


def resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = document["components"]["schemas"][name]
    return schema


def untyped(schema: dict[str, Any], document: dict[str, Any], path: str) -> list[str]:
    """Places in `schema` that say nothing about their content: {}, or an object without
    properties (a dict[str, Any] response)."""
    schema = resolve(schema, document)
    if not schema:
        return [f"{path}: empty schema"]
    problems = []
    for key in ("oneOf", "anyOf", "allOf"):
        for index, option in enumerate(schema.get(key, [])):
            problems += untyped(option, document, f"{path}.{key}[{index}]")
    if schema.get("type") == "array":
        problems += untyped(schema.get("items", {}), document, f"{path}[]")
    if schema.get("type") == "object" and not schema.get("properties"):
        problems.append(f"{path}: an object with no properties")
    return problems


def test_docs_page_renders(server: GatewayServer) -> None:
    with server.client() as client:
        response = client.get("/docs")
    assert response.status_code == 200
    assert "swagger" in response.text.lower()


@pytest.mark.parametrize(
    "path", ["/docs/nope", "/docs/swagger", "/docs/openapi.yaml", "/docs/nope/deeper", "/schema/x"]
)
def test_unknown_docs_pages_get_the_json_404_of_any_unknown_path(
    server: GatewayServer, path: str
) -> None:
    """Litestar's docs router answers its unknown pages with an HTML 404 of its own (the first
    two paths reach it); the other three are routing's 404s, kept so every unknown page under
    the docs is checked against the same answer."""
    with server.client() as client:
        expected = client.get("/nope")
        response = client.get(path)
    assert expected.status_code == 404
    assert response.status_code == 404
    assert response.headers["content-type"] == expected.headers["content-type"]
    assert response.json() == expected.json()


def test_every_operation_has_a_typed_success_response(document: dict[str, Any]) -> None:
    operations = [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]
    # Every wire family is described: Ollama, OpenAI, rerank, native, admin.
    paths = {path for _, path, _ in operations}
    for expected in (
        "/api/embed",
        "/api/ps",
        "/api/show",
        "/api/pull",
        "/v1/embeddings",
        "/v1/rerank",
        "/rerank",
        "/api/rerank",
        "/img/stats",
        "/info",
        "/health",
        "/admin/models",
    ):
        assert expected in paths, f"{expected} is not in the document"
    problems = []
    for method, path, operation in operations:
        where = f"{method.upper()} {path}"
        successes = {code: r for code, r in operation["responses"].items() if code[0] == "2"}
        if not successes:
            problems.append(f"{where}: no success response")
        for code, response in successes.items():
            content = response.get("content")
            if path == "/api/delete":  # Ollama answers an empty body
                continue
            if not content:
                problems.append(f"{where} {code}: no content schema")
                continue
            for media, body in content.items():
                problems += untyped(body.get("schema", {}), document, f"{where} {code} {media}")
    assert problems == []


def test_the_embeddings_response_describes_vectors_and_matrices(document: dict[str, Any]) -> None:
    operation = document["paths"]["/v1/embeddings"]["post"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    response = resolve(schema, document)
    item = resolve(response["properties"]["data"]["items"], document)
    assert {"index", "embedding", "object", "shape"} <= set(item["properties"])
    assert set(item["required"]) == {"index", "embedding", "object"}
    rendered = str(item["properties"]["embedding"])
    assert "'number'" in rendered and "'string'" in rendered and "'array'" in rendered


def test_pull_documents_its_stream_and_its_single_answer(document: dict[str, Any]) -> None:
    """/api/pull streams NDJSON progress by default and answers one JSON object with
    `stream: false`: both media types are declared, each line a PullStatus."""
    content = document["paths"]["/api/pull"]["post"]["responses"]["200"]["content"]
    assert set(content) == {"application/json", "application/x-ndjson"}
    assert content["application/x-ndjson"]["schema"] == content["application/json"]["schema"]
    assert content["application/json"]["schema"]["$ref"].endswith("/PullStatus")


BODY_METHODS = {"post", "put", "patch", "delete"}


def test_routes_that_take_a_body_document_415_in_their_family_shape(
    document: dict[str, Any],
) -> None:
    """A content coding the server does not decode (gzip, br, ...) is a 415."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                documented = "415" in operation["responses"]
                assert documented == (method in BODY_METHODS), (method, path)
    for path, shape in (
        ("/api/embed", "ErrorResponse"),
        ("/v1/embeddings", "OpenAIErrorResponse"),
        ("/tokenize", "TeiErrorResponse"),
    ):
        schema = document["paths"][path]["post"]["responses"]["415"]["content"]["application/json"]
        assert schema["schema"]["$ref"] == f"#/components/schemas/{shape}"


@pytest.mark.parametrize(
    ("path", "shape"),
    [
        ("/api/tags", "ErrorResponse"),
        ("/api/version", "ErrorResponse"),
        ("/api/ps", "ErrorResponse"),
        ("/health", "ErrorResponse"),
        ("/info", "ErrorResponse"),
        ("/v1/models", "OpenAIErrorResponse"),
    ],
)
def test_routes_without_input_document_the_connections_400_and_limits(
    document: dict[str, Any], path: str, shape: str
) -> None:
    """A request line or header httptools cannot parse is a JSON 400 from the connection
    (gateway/connections.py) on any route, GETs too, beside its 408, 431 and 501 (a transfer
    coding besides chunked); a browser origin that is not allowed is a 403 on any route
    (gateway/api/origins.py)."""
    responses = document["paths"][path]["get"]["responses"]
    for status in ("400", "403", "408", "431", "501"):
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema["$ref"] == f"#/components/schemas/{shape}", (path, status)


def test_shared_tei_paths_document_tei_errors_for_what_is_answered_unread(
    document: dict[str, Any],
) -> None:
    """On /embed, POST / and /rerank a wrong key, a body over the limit or in an undecoded
    coding, and the connection's own 408/431 are TEI-shaped whatever body was coming
    (tests/api/test_unread_bodies.py); a 400 or 404 follows the body, so either shape."""
    tei = "#/components/schemas/TeiErrorResponse"
    either = {tei, "#/components/schemas/ErrorResponse"}
    for path in ("/embed", "/", "/rerank"):
        responses = document["paths"][path]["post"]["responses"]
        for status in ("401", "403", "408", "413", "415", "431", "501"):
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema.get("$ref") == tei, (path, status, schema)
        for status in ("400", "404"):
            schema = responses[status]["content"]["application/json"]["schema"]
            assert {s["$ref"] for s in schema["anyOf"]} == either, (path, status, schema)


def test_error_responses_carry_no_generated_examples(document: dict[str, Any]) -> None:
    """Litestar would fill examples with random strings: messages no server sends."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            for code, response in operation["responses"].items():
                for media in response.get("content", {}).values():
                    assert "examples" not in media.get("schema", {}), (method, path, code)


def test_model_storage_and_source_failures_are_documented(document: dict[str, Any]) -> None:
    """A pull (or a model loaded on demand with GATEWAY_AUTO_PULL) can fail at its source (502)
    or in the models folder (507); a delete can meet a model in use, pulling or loading (409)
    or a models folder it cannot change (507)."""
    paths = document["paths"]
    for path in ("/api/pull", "/api/embed", "/v1/embeddings", "/api/delete"):
        method = "delete" if path == "/api/delete" else "post"
        assert {"502", "507"} <= set(paths[path][method]["responses"]), path
    assert "409" in paths["/api/delete"]["delete"]["responses"]


def test_embed_sparse_documents_teis_pairs_and_errors(document: dict[str, Any]) -> None:
    """TEI's [[{index, value}]] and its error shape at its statuses (Empty 400, Validation 422,
    Backend 424, Overloaded 429)."""
    responses = document["paths"]["/embed_sparse"]["post"]["responses"]
    schema = responses["200"]["content"]["application/json"]["schema"]
    assert schema["type"] == "array" and schema["items"]["type"] == "array"
    pair = resolve(schema["items"]["items"], document)
    assert pair["properties"]["index"]["type"] == "integer"
    assert pair["properties"]["value"]["type"] == "number"
    assert set(pair["required"]) == {"index", "value"}
    for status in ("400", "422", "424", "429"):
        error = responses[status]["content"]["application/json"]["schema"]
        assert error["$ref"] == "#/components/schemas/TeiErrorResponse", status


def _png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), (200, 30, 30)).save(buffer, format="PNG")
    return data_url(buffer.getvalue())


MODEL = "all-minilm"
# A body each route answers with 200 on the bundled model; the probes change one field at a time.
BODIES: dict[str, dict[str, Any]] = {
    "/api/embed": {"model": MODEL, "input": "hi"},
    "/api/embeddings": {"model": MODEL, "prompt": "hi"},
    "/api/show": {"model": MODEL},
    "/v1/embeddings": {"model": MODEL, "input": "hi"},
    "/embeddings": {"model": MODEL, "input": "hi"},
    "/v1/rerank": {"query": "q", "documents": ["a"]},
    "/v2/rerank": {"model": MODEL, "query": "q", "documents": ["a"]},
    "/rerank": {"query": "q", "documents": ["a"]},
    "/api/rerank": {"model": MODEL, "query": "q", "documents": ["a"]},
    "/txt/batch": {"inputs": ["hi"]},
    "/batch": {"inputs": ["hi"]},
    "/txt/embed": {"input": "hi"},
    "/img/stats": {"content": _png()},
    "/decode": {"ids": [101]},
    "/embed_all": {"inputs": "hi"},
    "/similarity": {"inputs": {"source_sentence": "hi", "sentences": ["yo"]}},
    "/tokenize": {"inputs": "hi"},
    "/v1/embed": {"model": MODEL, "texts": ["hi"]},
    "/v2/embed": {"model": MODEL, "texts": ["hi"], "input_type": "search_document"},
}
# /api/pull and /api/delete change the models folder; the image routes need a vision model and
# /embed_sparse a SPLADE model, which the bundled registry does not pull. Their bodies share the
# rules probed elsewhere.
NOT_PROBED = {"/api/pull", "/api/delete", "/img/embed", "/img/batch", "/embed_sparse"}


def test_every_request_body_is_probed(document: dict[str, Any]) -> None:
    with_bodies = {
        path
        for path, item in document["paths"].items()
        for operation in item.values()
        if isinstance(operation, dict) and "requestBody" in operation
    }
    assert with_bodies == set(BODIES) | NOT_PROBED


def test_the_document_says_what_request_bodies_the_server_takes(
    server: GatewayServer, document: dict[str, Any]
) -> None:
    """Lenient booleans ("0", "TRUE", 1) are documented as taken, "" and [] as refused where a
    route refuses them, and fields a route requires (v2's model) as required."""
    with server.client() as client:
        assert disagreements(client, document, BODIES) == []


def test_lenient_booleans_integers_and_required_models_are_in_the_document(
    document: dict[str, Any],
) -> None:
    schemas = document["components"]["schemas"]
    truncate = schemas["ollama_wire_EmbedBody"]["properties"]["truncate"]
    accepts = Draft202012Validator(truncate).is_valid
    assert all(accepts(v) for v in (True, "0", "TRUE", "false", 1, None, "null"))
    assert not any(accepts(v) for v in ("yes", 2, "", "01"))
    top_n = schemas["CohereBody"]["properties"]["top_n"]
    accepts = Draft202012Validator(top_n).is_valid
    assert all(accepts(v) for v in (3, "3", "1e2", "20.0", None, "Null"))
    assert not any(accepts(v) for v in (0, "0", "-1", "1.5", "03", " 3", ""))
    # A width the handler reads itself takes no strings.
    dimensions = schemas["openai_EmbeddingsBody"]["properties"]["dimensions"]
    assert not Draft202012Validator(dimensions).is_valid("3")
    assert "model" in schemas["CohereV2Body"]["required"]
    assert "model" not in schemas["CohereBody"]["required"]


def test_every_schema_is_valid_json_schema_2020_12(document: dict[str, Any]) -> None:
    """OpenAPI 3.1's schema dialect: the bodies' added unions and keywords keep it valid."""
    assert document["openapi"].startswith("3.1")
    meta = Draft202012Validator(Draft202012Validator.META_SCHEMA)
    schemas = document["components"]["schemas"]
    assert [name for name, schema in schemas.items() if not meta.is_valid(schema)] == []
