"""What the rerank API tests (tests/api/rerank/) share: the served names of their gateway
(tests/api/rerank/conftest.py), hand-written queries with the documents that answer them,
and how a 200 answer and its scores are read."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np

COLBERTS = {"colbert-bert": "bert", "colbert-modern": "modernbert"}
BERT = "colbert-bert"
MINILM = "all-minilm"
PROXY = "minilm-late"  # MiniLM token states with answerai-colbert-small's markers and expansion
PROXY_PLAIN = "minilm-late-plain"  # the same without markers or [MASK] expansion
CROSS = "tiny-reranker"
SCORE_TOLERANCE = 1e-4
LONG_DOCUMENT = 9  # DOCUMENTS[9] is longer than document_length

# (query, the document written to answer it); every other document is about something else.
TOPICS = [
    (
        "how many legs does a spider have",
        "Spiders are arachnids with eight legs, two body segments and no antennae.",
    ),
    (
        "what is the boiling point of water at sea level",
        "At sea level, water boils at 100 degrees Celsius, which is 212 degrees Fahrenheit.",
    ),
    (
        "how do I reset a forgotten email password",
        "If you forgot your email password, click 'Forgot password' on the sign-in page and "
        "follow the reset link.",
    ),
    (
        "when did the Second World War end",
        "The Second World War ended in 1945, when Germany surrendered in May and Japan in "
        "September.",
    ),
    (
        "how to brew a cup of green tea",
        "Steep green tea leaves in water at about 80 degrees for two to three minutes, then "
        "strain the tea into a cup.",
    ),
    (
        "why is the sky blue",
        "The sky looks blue because air molecules scatter the short blue wavelengths of sunlight "
        "more than red ones.",
    ),
    (
        "what do giant pandas eat",
        "Giant pandas feed almost entirely on bamboo, eating shoots and leaves for many hours a "
        "day.",
    ),
    (
        "how does a solar panel make electricity",
        "Solar panels hold photovoltaic cells in which sunlight frees electrons in silicon and "
        "produces an electric current.",
    ),
    (
        "training tips for a first marathon",
        "To train for your first marathon, build up your weekly long run slowly, take rest days "
        "and taper before the race.",
    ),
    (
        "what is the capital city of Australia",
        "Canberra, not Sydney, is the capital city of Australia.",
    ),
]
TOPIC_DOCUMENTS = [document for _, document in TOPICS]


def post(client: httpx.Client, path: str, body: dict[str, Any]) -> Any:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def by_index(results: list[dict[str, Any]], key: str = "relevance_score") -> np.ndarray:
    """Scores in the documents' input order, after checking the results are sorted."""
    scores = [row[key] for row in results]
    assert scores == sorted(scores, reverse=True), "results must be most relevant first"
    ordered = np.full(len(results), np.nan)
    for row in results:
        ordered[row["index"]] = row[key]
    assert not np.isnan(ordered).any(), "every index exactly once"
    return ordered
