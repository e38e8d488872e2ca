"""Embeddings of decision texts: the `Embedder` protocol, its implementations and `embed_pending`.

The default is a model2vec static model (numpy only, no torch), loaded from a local folder or by
Hugging Face hub name from `CONTEXTGRAPH_EMBEDDING_MODEL`. With `CONTEXTGRAPH_EMBEDDING_API_URL`
set, any OpenAI-compatible `/v1/embeddings` endpoint is used instead. The default setting, `auto`,
loads `minishlab/potion-base-8M` from the hub and, where the hub cannot be reached (offline, air-
gapped), falls back to the built-in `HashingEmbedder` with a notice; a model named explicitly that
cannot be loaded is an `EmbeddingError` saying how to fix it.

`embed_pending(store, embedder)` embeds, in batches, every decision whose stored embedding was made
by another model or from a different text (the store keeps a hash of the embedded text).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from contextgraph.config import Settings
from contextgraph.errors import EmbeddingError

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors of a fixed dimension."""

    @property
    def name(self) -> str:
        """Identifies the model; stored next to each embedding so a model change re-embeds."""
        ...

    @property
    def dimensions(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One row per text, L2-normalised, dtype float32."""
        ...


def normalise(vectors: npt.ArrayLike) -> Vectors:
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    unit: Vectors = (array / norms).astype(np.float32, copy=False)
    return unit


class Model2VecEmbedder:
    """A model2vec static model, from a local folder or a Hugging Face hub name."""

    def __init__(self, model: str | Path) -> None:
        self.source = str(model)
        path = Path(self.source).expanduser()
        local = path.is_dir()
        quiet = logging.getLogger("huggingface_hub.repocard")  # "Repo card metadata block was not found"
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            from model2vec import StaticModel

            self._model = StaticModel.from_pretrained(str(path) if local else self.source)
        except Exception as exc:
            if local:
                raise EmbeddingError(
                    f"cannot load the model2vec model in {path} ({type(exc).__name__}: {exc}): "
                    "point CONTEXTGRAPH_EMBEDDING_MODEL at a model2vec model folder"
                ) from None
            raise EmbeddingError(
                f"cannot load embedding model {self.source!r} from the Hugging Face hub "
                f"({type(exc).__name__}): set CONTEXTGRAPH_EMBEDDING_MODEL to a local model folder"
            ) from None
        finally:
            quiet.setLevel(level)
        self._name = f"model2vec:{path.name if local else self.source}"
        self._dimensions = int(self._model.dim)

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self._dimensions), dtype=np.float32)
        return normalise(self._model.encode(list(texts), show_progress_bar=False))


class OpenAICompatibleEmbedder:
    """Any server speaking OpenAI's `POST /v1/embeddings` (OpenAI, vLLM, Ollama, LiteLLM, …)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: Any = None,
        dimensions: int | None = None,
        timeout: float = 30.0,
        transport: Any = None,
    ) -> None:
        try:
            import httpx
        except ImportError:  # pragma: no cover - httpx ships with the slack extra
            raise EmbeddingError("the embedding API needs httpx: pip install 'contextgraph[slack]'") from None
        self.model = model
        self._url = base_url.rstrip("/") + ("" if base_url.rstrip("/").endswith("/v1") else "/v1")
        key = api_key.get_secret_value() if hasattr(api_key, "get_secret_value") else api_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(base_url=self._url, headers=headers, timeout=timeout, transport=transport)
        self._dimensions = dimensions

    @property
    def name(self) -> str:
        return f"openai:{self.model}"

    @property
    def dimensions(self) -> int:
        if self._dimensions is None:
            self._dimensions = int(self.embed(["dimension probe"]).shape[1])
        return self._dimensions

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self._dimensions or 0), dtype=np.float32)
        try:
            response = self._client.post("/embeddings", json={"model": self.model, "input": list(texts)})
        except Exception as exc:
            raise EmbeddingError(
                f"the embedding API at {self._url} is unreachable ({type(exc).__name__}): "
                "check CONTEXTGRAPH_EMBEDDING_API_URL"
            ) from None
        if response.status_code in (401, 403):
            raise EmbeddingError(
                f"the embedding API at {self._url} rejected the key ({response.status_code}): "
                "check CONTEXTGRAPH_EMBEDDING_API_KEY"
            )
        if response.status_code >= 400:
            raise EmbeddingError(
                f"the embedding API at {self._url} answered {response.status_code} for model "
                f"{self.model!r}: check CONTEXTGRAPH_EMBEDDING_MODEL"
            )
        data = sorted(response.json()["data"], key=lambda item: item["index"])
        vectors = normalise([item["embedding"] for item in data])
        self._dimensions = int(vectors.shape[1])
        return vectors


class HashingEmbedder:
    """The offline fallback: words and word pairs hashed into a fixed-size vector (no model, no download).

    It finds decisions that share words, weighting rare ones by log counts; it knows nothing of
    meaning, so "refund" and "money back" do not meet. Set CONTEXTGRAPH_EMBEDDING_MODEL for that.
    """

    name = "hashing:words-v1"
    dimensions = 256
    _WORD = re.compile(r"[^\W_]+")

    def embed(self, texts: Sequence[str]) -> Vectors:
        vectors = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            words = [w[:6] for w in self._WORD.findall(text.lower())]  # a crude stem: the first 6 letters
            for feature in [*words, *(f"{a} {b}" for a, b in itertools.pairwise(words))]:
                digest = hashlib.blake2b(feature.encode(), digest_size=4).digest()
                index = int.from_bytes(digest[:3], "little") % self.dimensions
                vectors[row, index] += 1.0 if digest[3] & 1 else -1.0
        return normalise(np.sign(vectors) * np.log1p(np.abs(vectors)))


AUTO = "auto"
HUB_DEFAULT = "minishlab/potion-base-8M"


def embedder_from_settings(settings: Settings) -> Embedder:
    """The embedder the settings describe (the API one when an API URL is set)."""
    api_url = getattr(settings, "embedding_api_url", None)
    if api_url:
        return OpenAICompatibleEmbedder(
            api_url, settings.embedding_model, api_key=getattr(settings, "embedding_api_key", None)
        )
    if settings.embedding_model != AUTO:
        return Model2VecEmbedder(settings.embedding_model)
    try:
        return Model2VecEmbedder(HUB_DEFAULT)
    except EmbeddingError:
        log.warning(
            "the embedding model %s cannot be downloaded here; using the built-in word-hashing embedder "
            "(set CONTEXTGRAPH_EMBEDDING_MODEL to a model2vec folder for embeddings that know meaning)",
            HUB_DEFAULT,
        )
        return HashingEmbedder()


# --- keeping the store's embeddings current -----------------------------------------------------


def text_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def decision_text(row: dict[str, Any]) -> str:
    """What is embedded (and, on the stores, word-indexed) for one decision: its situation -- subject,
    body without the marked precedent section, the proposals it judged (`mapping.situation_text`) --
    or its search text when it has none of those."""
    from contextgraph.ingest.mapping import situation_text

    text = situation_text(row.get("subject"), row.get("body"), row.get("proposals") or [])
    if text.strip():
        return text
    return str(row.get("text") or "")


@dataclass(frozen=True)
class EmbeddingRow:
    """One decision's embedding to store; `vector=None` only re-marks an unchanged text as current."""

    key: str
    vector: Vectors | None
    text_hash: str
    content_hash: str | None
    text: str | None = None


@dataclass
class EmbedReport:
    model: str
    embedded: int = 0
    unchanged: int = 0
    seconds: float = 0.0


def embed_pending(
    store: Any,
    embedder: Embedder,
    *,
    batch_size: int = 2000,
    progress: Callable[[int], None] | None = None,
) -> EmbedReport:
    """Embed every decision whose embedding is missing, from another model or of an older text."""
    started = time.perf_counter()
    report = EmbedReport(model=embedder.name)
    store.prepare_embeddings(embedder.dimensions)
    done: set[str] = set()
    while True:
        pending = store.decisions_needing_embedding(embedder.name, limit=batch_size)
        if not pending or all(item["key"] in done for item in pending):
            break  # nothing left, or the store did not take the last batch: never loop for ever
        done.update(item["key"] for item in pending)
        rows: list[EmbeddingRow] = []
        to_embed: list[tuple[dict[str, Any], str, str]] = []
        for item in pending:
            text = decision_text(item)
            digest = text_hash(text)
            if item.get("model") == embedder.name and item.get("text_hash") == digest:
                rows.append(EmbeddingRow(item["key"], None, digest, item.get("content_hash")))
            else:
                to_embed.append((item, text, digest))
        if to_embed:
            vectors = embedder.embed([text for _, text, _ in to_embed])
            rows.extend(
                EmbeddingRow(item["key"], vector, digest, item.get("content_hash"), text)
                for (item, text, digest), vector in zip(to_embed, vectors, strict=True)
            )
        store.write_embeddings(rows, embedder.name)
        report.embedded += len(to_embed)
        report.unchanged += len(rows) - len(to_embed)
        if progress is not None:
            progress(len(rows))
        if len(pending) < batch_size:
            break
    store.refresh_indexes()  # the embedded store's BM25 and vector index beside its file
    report.seconds = time.perf_counter() - started
    log.info("embedded %d decisions (%d unchanged) with %s", report.embedded, report.unchanged, report.model)
    return report
