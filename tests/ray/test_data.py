"""Corpus embedding on Ray Data: a few thousand texts from Parquet (and JSONL) through a pool of
two actors give the single-process server's vectors, row for row."""

from __future__ import annotations

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
    for part, start in enumerate(range(0, ROWS, 1000)):  # three files: several read tasks
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
