"""The embedded store's search indexes, in a folder beside the store file (`<store>.index/`).

Ladybug's own FTS and vector extensions download at run time (they fail offline), so the embedded
store keeps its candidate indexes here, rebuilt from the store by `EmbeddedStore.refresh_indexes()`
(run at the end of every embedding pass, i.e. every ingest, and by `contextgraph reindex`):

    bm25/          a bm25s BM25 index (Lucene scoring, k1=1.2, b=0.75) of each answered decision's
                   search text, Snowball-stemmed, bm25s's English stop words removed
    vectors.npy    the answered decisions' embeddings (float32, unit length), one row per decision
    vectors.usearch  a usearch HNSW graph over those rows (inner product, row number = key), only
                   from `ann_threshold` rows on (`CONTEXTGRAPH_ANN_THRESHOLD`, default 20,000)
    meta.json      keys, decision point, chosen options and answer time per row; the model

Below the threshold vector candidates are exact: one single-threaded matrix-vector product over
every row (under 10 ms at 20k x 256). From the threshold on, the exact scan is the slowest part of
a precedent query (57/101 ms p50/p95 at 100k on 2 busy cores), so an unfiltered search asks the
HNSW graph; a filtered one (filters are a boolean mask over the rows) over-fetches from it in
proportion to how much the filter keeps and drops what fails, and when the filter keeps fewer
than `ann_threshold` rows, or the over-fetch comes back short, it scans exactly the rows the
filter keeps — so a selective filter never misses a row because the graph did not reach it.
usearch (a kept library with wheels for every platform, ~11 MB, no compiler) was chosen because
hnswlib has no wheels and did not build here. A rebuild (every ingest, `forget`, `reindex`)
writes the graph again with the rest of the folder, so a forgotten decision leaves it too; a
rebuild writes a fresh folder and swaps it in, so a reader never sees half an index.
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
DEFAULT_ANN_THRESHOLD = 20_000
"""Answered decisions from which the vector index is an HNSW graph (below it, an exact scan)."""
ANN_FILE = "vectors.usearch"
ANN_OVERFETCH = 4
"""Candidates asked of the HNSW graph per one wanted, before the filter's share is accounted for."""


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

    def __init__(self, folder: Path, *, ann_threshold: int | None = None) -> None:
        """`folder`: where the index lives (created by `build`). `ann_threshold`: answered decisions
        from which vectors are searched through an HNSW graph (default `CONTEXTGRAPH_ANN_THRESHOLD`,
        else 20,000); below it, exactly. Raises ValueError when it is below 1."""
        self.folder = Path(folder)
        if ann_threshold is None:
            ann_threshold = int(os.environ.get("CONTEXTGRAPH_ANN_THRESHOLD", DEFAULT_ANN_THRESHOLD))
        if ann_threshold < 1:
            raise ValueError(f"ann_threshold must be at least 1, not {ann_threshold}")
        self.ann_threshold = ann_threshold
        self._ann: Any = None
        self._lock = threading.Lock()
        self._loaded_stamp: float | None = None
        self._bm25: Any = None
        self._vectors: npt.NDArray[np.float32] | None = None
        self._meta: dict[str, Any] = {}
        self._key_index: dict[str, int] = {}
        self._dag = _Codes([])
        self._task = _Codes([])
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
            matrix = np.ascontiguousarray(rows.vectors, dtype=np.float32)
            np.save(tmp / "vectors.npy", matrix)
            if len(matrix) >= self.ann_threshold:
                _build_ann(matrix).save(str(tmp / ANN_FILE))
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
            self._ann = None
            self._key_index = {}
            return
        if stamp == self._loaded_stamp:
            return
        import bm25s

        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        bm25 = bm25s.BM25.load(str(self.folder / "bm25")) if (self.folder / "bm25").is_dir() else None
        vectors_file = self.folder / "vectors.npy"
        vectors = np.load(vectors_file) if vectors_file.is_file() else None
        ann = None
        if (self.folder / ANN_FILE).is_file():
            from usearch.index import Index

            ann = Index.restore(str(self.folder / ANN_FILE))
        self._meta, self._bm25, self._vectors, self._ann = meta, bm25, vectors, ann
        self._key_index = {key: i for i, key in enumerate(meta["keys"])}
        self._dag = _Codes(meta["dag_ids"])
        self._task = _Codes(meta["task_ids"])
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
                "vector_index": "hnsw" if self._ann is not None else "exact",
            }

    def _deployments(self) -> _Codes:
        """Each row's deployment, read from its key (`model.parse_key`), once per loaded index."""
        from contextgraph import model as m

        if self._meta.get("_deployments") is None:
            keys = self._meta.get("keys", [])
            self._meta["_deployments"] = _Codes([m.parse_key(m.Decision, k)[0] for k in keys])
        found: _Codes = self._meta["_deployments"]
        return found

    def _mask(self, filters: Any) -> npt.NDArray[np.bool_] | None:
        """Rows that pass the filters (None: all of them)."""
        n = len(self._key_index)
        mask: npt.NDArray[np.bool_] | None = None

        def narrow(m: npt.NDArray[np.bool_]) -> None:
            nonlocal mask
            mask = m if mask is None else mask & m

        if getattr(filters, "deployment", None) is not None:
            narrow(self._deployments().equal(filters.deployment))
        if filters.dag_id is not None:
            narrow(self._dag.equal(filters.dag_id))
        if filters.task_id is not None:
            narrow(self._task.equal(filters.task_id))
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
        self,
        scores: npt.NDArray[Any],
        k: int,
        mask: npt.NDArray[np.bool_] | None,
        positive: bool,
        rows: npt.NDArray[np.intp] | None = None,
    ) -> list[tuple[str, float]]:
        """The `k` highest finite scores as (key, score), best first; `rows`: the row each score
        belongs to when `scores` covers only some rows (default: score i is row i)."""
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
            (
                (keys[i if rows is None else int(rows[i])], float(scores[i]))
                for i in top
                if np.isfinite(scores[i])
            ),
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
            mask = self._mask(filters)
            if self._ann is not None:
                found = self._ann_candidates(query, k, mask)
                if found is not None:
                    return found
            if mask is not None and self._ann is not None:
                rows = np.flatnonzero(mask)  # a selective filter: only the rows it keeps
                scores = np.einsum("ij,j->i", self._vectors[rows], query)
                ranked = self._top(scores, k, None, positive=False, rows=rows)
                return ranked
            # einsum, not `@`: BLAS spreads a matrix-vector product over threads, which on a busy
            # machine costs far more than it gains (2k rows: 36 ms vs 0.14 ms at load 8).
            scores = np.einsum("ij,j->i", self._vectors, query)
            return self._top(scores, k, mask, positive=False)

    def _ann_candidates(
        self, query: npt.NDArray[np.float32], k: int, mask: npt.NDArray[np.bool_] | None
    ) -> list[tuple[str, float]] | None:
        """The top `k` through the HNSW graph, or None when an exact scan of the filtered rows is
        the better (or the only complete) answer: the filter keeps fewer rows than the threshold,
        or the over-fetch did not bring `k` rows that pass it."""
        n = len(self._vectors) if self._vectors is not None else 0
        kept = n if mask is None else int(mask.sum())
        if kept == 0 or k <= 0:
            return []
        if mask is not None and kept < self.ann_threshold:
            return None
        want = min(k, kept)
        fetch = min(n, int(ANN_OVERFETCH * want * n / kept) + 16)
        matches = self._ann.search(query, fetch, threads=1)
        keys = self._meta["keys"]
        ranked: list[tuple[str, float]] = []
        for row, distance in zip(matches.keys.tolist(), matches.distances.tolist(), strict=True):
            if mask is None or mask[row]:
                ranked.append((keys[row], 1.0 - float(distance)))  # inner-product distance: 1 - cosine
        if len(ranked) < want:
            return None
        ranked.sort(key=lambda item: (-item[1], item[0]))
        return ranked[:want]

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


class _Codes:
    """A column of strings as integer codes, so `equal` is an integer comparison (a string one over
    100k Python objects took several ms per filtered query)."""

    def __init__(self, values: Sequence[str | None]) -> None:
        self._code: dict[str | None, int] = {}
        self._rows = np.fromiter(
            (self._code.setdefault(v, len(self._code)) for v in values), dtype=np.int32, count=len(values)
        )

    def equal(self, value: str | None) -> npt.NDArray[np.bool_]:
        """Rows whose value is `value` (shape: rows)."""
        code = self._code.get(value)
        if code is None:
            return np.zeros(len(self._rows), dtype=bool)
        found: npt.NDArray[np.bool_] = self._rows == code
        return found


def _build_ann(matrix: npt.NDArray[np.float32]) -> Any:
    """A usearch HNSW graph over `matrix`'s rows (n x d, unit length), row number as key.

    Inner product on unit vectors is cosine; connectivity 16 and expansion 128/64 are usearch's
    defaults, which gave recall@10 0.9985 against the exact scan on the 100k benchmark index
    (`bench.ann_vectors`)."""
    from usearch.index import Index

    index = Index(ndim=matrix.shape[1], metric="ip", dtype="f32")
    index.add(np.arange(len(matrix), dtype=np.uint64), matrix)
    return index
