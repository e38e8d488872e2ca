"""The embedded store's search indexes, in a folder beside the store file (`<store>.index/`).

Ladybug's own FTS and vector extensions download at run time (they fail offline), so the embedded
store keeps its candidate indexes here, rebuilt from the store by `EmbeddedStore.refresh_indexes()`
(run at the end of every embedding pass, i.e. every ingest, and by `contextgraph reindex`):

    bm25/          a bm25s BM25 index (Lucene scoring, k1=1.2, b=0.75) of each answered decision's
                   search text, Snowball-stemmed, bm25s's English stop words removed
    vectors.npy    the answered decisions' embeddings (float32, unit length), one row per decision
    meta.json      keys, decision point, chosen options and answer time per row; the model

Vector candidates are exact: one single-threaded matrix-vector product over every row (52 ms at
100k x 256 on 2 cores at load 8, memory-bound), so no approximate index is needed at the sizes
this product serves; filters are a boolean mask over the rows, so a filtered search is as exact
as an unfiltered one. A rebuild writes a fresh folder and swaps it in, so a reader never sees half an index.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from contextgraph.retrieval.words import stems, tokenize_corpus

log = logging.getLogger(__name__)

VERSION = 1


@dataclass(frozen=True)
class IndexRows:
    """What a rebuild indexes: one entry per answered decision (vectors: None when not embedded)."""

    keys: list[str]
    texts: list[str]
    dag_ids: list[str]
    task_ids: list[str]
    chosen: list[list[str]]
    answered_at: list[float]  # seconds since the epoch (UTC), 0 when unknown
    vectors: npt.NDArray[np.float32] | None
    model: str | None


class SidecarIndex:
    """BM25 and vector candidates over a store's answered decisions, from files beside the store."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()
        self._loaded_stamp: float | None = None
        self._bm25: Any = None
        self._vectors: npt.NDArray[np.float32] | None = None
        self._meta: dict[str, Any] = {}
        self._key_index: dict[str, int] = {}
        self._dag: npt.NDArray[Any] = np.array([])
        self._task: npt.NDArray[Any] = np.array([])
        self._time: npt.NDArray[np.float64] = np.array([])

    # --- building -------------------------------------------------------------------------------

    def exists(self) -> bool:
        return (self.folder / "meta.json").is_file()

    def build(self, rows: IndexRows) -> None:
        """Write a new index from `rows` and swap it in place of the old one."""
        import bm25s

        tmp = self.folder.with_name(self.folder.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if rows.keys:
            retriever = bm25s.BM25()
            retriever.index(tokenize_corpus(rows.texts), show_progress=False)
            retriever.save(str(tmp / "bm25"), show_progress=False)
        if rows.vectors is not None and len(rows.vectors):
            np.save(tmp / "vectors.npy", np.ascontiguousarray(rows.vectors, dtype=np.float32))
        meta = {
            "version": VERSION,
            "model": rows.model if rows.vectors is not None else None,
            "dimensions": int(rows.vectors.shape[1])
            if rows.vectors is not None and len(rows.vectors)
            else None,
            "keys": rows.keys,
            "dag_ids": rows.dag_ids,
            "task_ids": rows.task_ids,
            "chosen": rows.chosen,
            "answered_at": rows.answered_at,
            "built_at": datetime.now(UTC).isoformat(),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        with self._lock:
            old = self.folder.with_name(self.folder.name + f".old{os.getpid()}")
            if self.folder.exists():
                self.folder.rename(old)
            tmp.rename(self.folder)
            shutil.rmtree(old, ignore_errors=True)
            self._loaded_stamp = None

    # --- reading --------------------------------------------------------------------------------

    def _load(self) -> None:
        """(Re)load the files if they changed since the last read."""
        meta_file = self.folder / "meta.json"
        try:
            stamp = meta_file.stat().st_mtime_ns
        except FileNotFoundError:
            self._loaded_stamp, self._meta, self._bm25, self._vectors = None, {}, None, None
            self._key_index = {}
            return
        if stamp == self._loaded_stamp:
            return
        import bm25s

        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        bm25 = bm25s.BM25.load(str(self.folder / "bm25")) if (self.folder / "bm25").is_dir() else None
        vectors_file = self.folder / "vectors.npy"
        vectors = np.load(vectors_file) if vectors_file.is_file() else None
        self._meta, self._bm25, self._vectors = meta, bm25, vectors
        self._key_index = {key: i for i, key in enumerate(meta["keys"])}
        self._dag = np.array(meta["dag_ids"], dtype=object)
        self._task = np.array(meta["task_ids"], dtype=object)
        self._time = np.array(meta["answered_at"], dtype=np.float64)
        self._loaded_stamp = stamp

    def info(self) -> dict[str, Any]:
        """The index's model, dimensions and size ({} when there is no index)."""
        with self._lock:
            self._load()
            if not self._meta:
                return {}
            return {
                "model": self._meta.get("model"),
                "dimensions": self._meta.get("dimensions"),
                "decisions": len(self._meta.get("keys", [])),
            }

    def _deployments(self) -> npt.NDArray[Any]:
        """Each row's deployment, read from its key (`model.parse_key`), once per loaded index."""
        from contextgraph import model as m

        if self._meta.get("_deployments") is None:
            keys = self._meta.get("keys", [])
            self._meta["_deployments"] = np.array([m.parse_key(m.Decision, k)[0] for k in keys], dtype=object)
        found: npt.NDArray[Any] = self._meta["_deployments"]
        return found

    def _mask(self, filters: Any) -> npt.NDArray[np.bool_] | None:
        """Rows that pass the filters (None: all of them)."""
        n = len(self._key_index)
        mask: npt.NDArray[np.bool_] | None = None

        def narrow(m: npt.NDArray[np.bool_]) -> None:
            nonlocal mask
            mask = m if mask is None else mask & m

        if getattr(filters, "deployment", None) is not None:
            narrow(self._deployments() == filters.deployment)
        if filters.dag_id is not None:
            narrow(self._dag == filters.dag_id)
        if filters.task_id is not None:
            narrow(self._task == filters.task_id)
        if filters.chosen is not None:
            narrow(np.array([filters.chosen in c for c in self._meta["chosen"]], dtype=bool))
        if filters.since is not None:
            narrow(self._time >= filters.since.astimezone(UTC).timestamp())
        if filters.exclude:
            m = np.ones(n, dtype=bool)
            for key in filters.exclude:
                i = self._key_index.get(key)
                if i is not None:
                    m[i] = False
            narrow(m)
        return mask

    def _top(
        self, scores: npt.NDArray[Any], k: int, mask: npt.NDArray[np.bool_] | None, positive: bool
    ) -> list[tuple[str, float]]:
        scores = scores.astype(np.float64, copy=True)
        if mask is not None:
            scores[~mask] = -np.inf
        if positive:
            scores[scores <= 0] = -np.inf
        k = min(k, len(scores))
        if k <= 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        keys = self._meta["keys"]
        ranked = sorted(
            ((keys[i], float(scores[i])) for i in top if np.isfinite(scores[i])),
            key=lambda item: (-item[1], item[0]),
        )
        return ranked

    def vector_candidates(
        self, vector: Sequence[float], model: str, k: int, filters: Any
    ) -> list[tuple[str, float]]:
        """The `k` decisions whose embedding (of `model`) is most like `vector`: (key, cosine)."""
        with self._lock:
            self._load()
            if self._vectors is None or self._meta.get("model") != model:
                return []
            query = np.asarray(vector, dtype=np.float32)
            if query.shape[0] != self._vectors.shape[1]:
                return []
            # einsum, not `@`: BLAS spreads a matrix-vector product over threads, which on a busy
            # machine costs far more than it gains (2k rows: 36 ms vs 0.14 ms at load 8).
            scores = np.einsum("ij,j->i", self._vectors, query)
            return self._top(scores, k, self._mask(filters), positive=False)

    def text_candidates(self, words: Sequence[str], k: int, filters: Any) -> list[tuple[str, float]]:
        """The `k` decisions with the highest BM25 score for the (unstemmed) words: (key, score)."""
        with self._lock:
            self._load()
            if self._bm25 is None or not words:
                return []
            vocab = self._bm25.vocab_dict
            known = [s for s in dict.fromkeys(stems(words)) if s in vocab]
            if not known:
                return []
            scores = self._bm25.get_scores(known)
            return self._top(np.asarray(scores), k, self._mask(filters), positive=True)

    def vectors_of(self, keys: Sequence[str], model: str) -> dict[str, npt.NDArray[np.float32]]:
        """Stored embeddings (of `model`) of these decisions, by key."""
        with self._lock:
            self._load()
            if self._vectors is None or self._meta.get("model") != model:
                return {}
            out = {}
            for key in keys:
                i = self._key_index.get(key)
                if i is not None:
                    out[key] = self._vectors[i]
            return out
