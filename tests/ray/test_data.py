"""Corpus embedding on Ray Data: a few thousand texts from Parquet (and JSONL) through a pool of
two actors give the single-process server's vectors, row for row."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest

from gateway.settings import Settings
from tests.support.api import ollama_embed
from tests.support.models import MINILM_FP32
from tools.corpus import generated_sentences
from tools.gateway_server import EXACT_MODE, GatewayServer
from tools.paths import REPO

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

ROWS = 2000


@pytest.fixture(scope="module")
def settings(multi_model_registry: Path) -> Settings:
    return Settings.load(
        environ={
            "GATEWAY_REGISTRY": str(multi_model_registry),
            "GATEWAY_MODELS_DIR": str(REPO / "models"),
            **EXACT_MODE,
        }
    )


def single_process_vectors(server: GatewayServer, texts: list[str]) -> np.ndarray:
    with server.client() as client:
        return np.concatenate(
            [
                ollama_embed(client, MINILM_FP32, texts[i : i + 500])
                for i in range(0, len(texts), 500)
            ]
        )


def read_output(folder: Path) -> tuple[list[int], np.ndarray]:
    table = pa.concat_tables([pq.read_table(f) for f in sorted(folder.glob("*.parquet"))])
    assert pa.types.is_fixed_size_list(table.schema.field("embedding").type)
    order = np.argsort(table.column("id").to_numpy())
    vectors = np.asarray(table.column("embedding").to_pylist(), dtype=np.float32)
    return table.column("id").to_numpy()[order].tolist(), vectors[order]


def test_parquet_corpus_matches_the_single_process_path(
    ray_cluster: Any, single_server: GatewayServer, settings: Settings, tmp_path: Path
) -> None:
    from gateway.distributed.embed_corpus import CorpusJob, embed_corpus

    texts = generated_sentences(ROWS, seed=16)
    source = tmp_path / "corpus"
    source.mkdir()
    for part, start in enumerate(range(0, ROWS, 1000)):  # two files: several read tasks
        chunk = {"id": list(range(start, start + 1000)), "text": texts[start : start + 1000]}
        pq.write_table(pa.table(chunk), source / f"part-{part}.parquet")
    job = CorpusJob(
        source=str(source),
        destination=str(tmp_path / "out"),
        model=MINILM_FP32,
        actors=2,
        actor_cpus=0.5,
        batch_size=200,
    )
    report = embed_corpus(job, settings)
    assert report.rows == ROWS and report.files >= 1, report
    ids, vectors = read_output(tmp_path / "out")
    assert ids == list(range(ROWS)), "every row once"
    expected = single_process_vectors(single_server, texts)
    assert vectors.shape == expected.shape == (ROWS, 384)
    difference = float(np.abs(vectors - expected).max())
    assert difference <= 1e-6, f"largest difference {difference}"
    print(f"\n{report.summary()}; largest difference from /api/embed: {difference:.2e}")


def test_jsonl_corpus_and_bad_jobs(
    ray_cluster: Any, single_server: GatewayServer, settings: Settings, tmp_path: Path
) -> None:
    from gateway.distributed.embed_corpus import CorpusJob, embed_corpus
    from gateway.errors import ModelNotFound

    texts = generated_sentences(200, seed=7)
    source = tmp_path / "corpus.jsonl"
    source.write_text("".join(json.dumps({"id": i, "body": t}) + "\n" for i, t in enumerate(texts)))
    job = CorpusJob(
        str(source),
        str(tmp_path / "out"),
        MINILM_FP32,
        text_column="body",
        actors=1,
        actor_cpus=0.5,
    )
    assert embed_corpus(job, settings).rows == len(texts)
    _, vectors = read_output(tmp_path / "out")
    assert float(np.abs(vectors - single_process_vectors(single_server, texts)).max()) <= 1e-6

    with pytest.raises(ValueError, match="no column 'text'"):
        embed_corpus(CorpusJob(str(source), str(tmp_path / "x"), MINILM_FP32), settings)
    with pytest.raises(ModelNotFound, match="no-such-model"):
        embed_corpus(
            CorpusJob(str(source), str(tmp_path / "y"), "no-such-model", text_column="body"),
            settings,
        )


def test_globs_ndjson_reruns_and_null_rows(
    ray_cluster: Any,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from gateway.distributed.corpus_files import CorpusError
    from gateway.distributed.embed_corpus import CorpusJob, embed_corpus, main

    texts = generated_sentences(200, seed=3)
    folder = tmp_path / "js"
    folder.mkdir()
    for name, rows in (("a.jsonl", range(100)), ("b.ndjson", range(100, 200))):
        lines = "".join(json.dumps({"id": i, "text": texts[i]}) + "\n" for i in rows)
        (folder / name).write_text(lines)
    out = tmp_path / "out"
    job = CorpusJob(str(folder / "*"), str(out), MINILM_FP32, actors=1, actor_cpus=0.5)
    assert embed_corpus(job, settings).rows == 200  # an absolute glob; .ndjson rows kept
    with pytest.raises(CorpusError, match="not empty"):  # Ray would append a second copy
        embed_corpus(job, settings)
    report = embed_corpus(dataclasses.replace(job, overwrite=True), settings)
    ids, _ = read_output(out)
    assert report.rows == 200 and ids == list(range(200)), report
    # An overwrite that fails part-way keeps the earlier output whole (Ray's own overwrite mode
    # emptied the folder before the first row was embedded).
    broken = tmp_path / "broken.jsonl"
    rows = [*texts[:150], None]
    broken.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(rows)))
    failing = dataclasses.replace(job, source=str(broken), overwrite=True)
    with pytest.raises(Exception, match="is null"):
        embed_corpus(failing, settings)
    ids, _ = read_output(out)
    assert ids == list(range(200)) and all(p.suffix == ".parquet" for p in out.iterdir())

    # A null text, found in an actor: one line naming the row, not Ray's traceback.
    pq.write_table(pa.table({"id": [1, 2, 3], "text": ["a", None, "c"]}), tmp_path / "n.parquet")
    for name, value in {
        "GATEWAY_REGISTRY": str(settings.registry),
        "GATEWAY_MODELS_DIR": str(settings.models_dir),
        **EXACT_MODE,
    }.items():
        monkeypatch.setenv(name, value)
    code = main(
        [str(tmp_path / "n.parquet"), str(tmp_path / "o"), "--model", MINILM_FP32,
         "--actors", "1", "--actor-cpus", "0.5"]
    )  # fmt: skip
    last = capsys.readouterr().err.splitlines()[-1]  # after Ray Data's own log lines
    assert (code, last) == (2, "embed_corpus: column 'text' is null in the row with id=2")
