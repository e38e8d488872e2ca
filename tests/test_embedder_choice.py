"""Which embedder a user gets: a named model, or with `auto` the hub model and offline a fallback."""

from __future__ import annotations

import numpy as np
import pytest

from contextgraph.config import Settings
from contextgraph.errors import EmbeddingError
from contextgraph.ingest import embeddings


def test_auto_falls_back_to_word_hashing_where_the_hub_cannot_be_reached(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(embeddings, "HUB_DEFAULT", "/nonexistent/model-that-is-not-on-the-hub")
    embedder = embeddings.embedder_from_settings(Settings(embedding_model="auto"))
    assert isinstance(embedder, embeddings.HashingEmbedder)
    assert "CONTEXTGRAPH_EMBEDDING_MODEL" in caplog.text


def test_a_named_model_that_cannot_be_loaded_is_one_clear_error(tmp_path: object) -> None:
    with pytest.raises(EmbeddingError) as error:
        embeddings.embedder_from_settings(Settings(embedding_model="/nonexistent/m2v-folder"))
    assert "CONTEXTGRAPH_EMBEDDING_MODEL" in str(error.value)


def test_word_hashing_ranks_shared_words_first() -> None:
    embedder = embeddings.HashingEmbedder()
    past = [
        "Dark mode feature request. Respond manually: check the roadmap first.",
        "Password reset email never arrives; resent the link.",
        "Charged twice for the invoice; refund the duplicate charge.",
    ]
    vectors = embedder.embed(past)
    query = embedder.embed(["Customer was charged twice, wants the duplicate refunded"])[0]
    assert vectors.shape == (3, embedder.dimensions)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert int(np.argmax(vectors @ query)) == 2
