"""The embedded store's search indexes, in a folder beside the store file (`<store>.index/`).

Ladybug's own FTS and vector extensions download at run time (they fail offline), so the embedded
store keeps its candidate indexes here, brought up to date from the store by
`EmbeddedStore.refresh_indexes()` (run at the end of every embedding pass, i.e. every ingest, after
`forget`, and in full by `contextgraph reindex`). Each save is one *generation* `<g>`:

    bm25.<g>/          a bm25s BM25 index (Lucene scoring, k1=1.2, b=0.75) of each answered
                       decision's search text, Snowball-stemmed, bm25s's English stop words removed
    vectors.<g>.npy    the answered decisions' embeddings (float32, unit length), one row per decision
    vectors.<g>.usearch  a usearch HNSW graph over those rows (inner product), only from
                       `ann_threshold` rows on (`CONTEXTGRAPH_ANN_THRESHOLD`, default 20,000)
    labels.<g>.npy     each row's label in that graph (uint64): stable, so the graph can be updated
    meta.json          the generation; keys, decision point, chosen options and answer time per
                       row; the model; the next free label; the store's `state` the rows were read
                       in (a digest of their hashes: a refresh that finds the same state does
                       nothing, `SidecarIndex.current`)

`meta.json` is the commit point: a save writes the new generation's files, then `meta.json.tmp`,
then `os.replace`s it over `meta.json`, and only then deletes the older generation. A crash
before the replace leaves the old generation whole and named by the old `meta.json`; leftovers of
an unfinished save are deleted by the next one. (A folder written before generations, with plain
`bm25/`, `vectors.npy`, `vectors.usearch` whose labels are the row numbers, is read as it is and
replaced by the next save.)

Below the threshold vector candidates are exact: one single-threaded matrix-vector product over
every row (under 10 ms at 20k x 256). From the threshold on, the exact scan is the slowest part of
a precedent query (57/101 ms p50/p95 at 100k on 2 busy cores), so an unfiltered search asks the
HNSW graph; a filtered one (filters are a boolean mask over the rows) over-fetches from it in
proportion to how much the filter keeps and drops what fails, and when the filter keeps fewer
than `ann_threshold` rows, or the over-fetch comes back short, it scans exactly the rows the
filter keeps — so a selective filter never misses a row because the graph did not reach it.
usearch (a kept library with wheels for every platform, ~11 MB, no compiler) was chosen because
hnswlib has no wheels and did not build here.

The graph is not rebuilt on every save: building it is the slow part (minutes at 100k), while
adding or removing a few rows costs milliseconds. A save compares the rows with the previous
generation's (by key and exact vector): a decision whose vector is unchanged keeps its label; a
new or changed one is added under a new label; one gone from the store, or whose vector changed,
is removed (`Index.remove`, which leaves a *tombstone*: the slot stays in the graph for
navigation, is never returned, and is reused by a later add). The removed vectors' bytes are then
zeroed in the saved graph file (`_scrub`), so an erased decision's embedding is not left on disk
in a tombstone. The graph is built from scratch instead when there is none, when the model or
width changed, when `rebuild` is asked (`contextgraph reindex`), or when tombstones would be more
than `MAX_REMOVED_SHARE` of the graph's slots. BM25 is rebuilt on every save whose decisions or
texts changed (else the last one's files are linked): bm25s stores precomputed per-document
scores that depend on the corpus-wide IDF and average length, so it has no incremental add (one
new document changes every stored weight).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from contextgraph.retrieval.words import corpus_tokenizer, stems

log = logging.getLogger(__name__)

VERSION = 2
DEFAULT_ANN_THRESHOLD = 20_000
"""Answered decisions from which the vector index is an HNSW graph (below it, an exact scan)."""
ANN_OVERFETCH = 4
"""Candidates asked of the HNSW graph per one wanted, before the filter's share is accounted for."""
MAX_REMOVED_SHARE = 0.25
"""Tombstones (removed rows whose slot no add has reused yet) may be at most this share of the
graph's slots; beyond it a save rebuilds the graph. Recall does not suffer from tombstones (usearch
still navigates through them: recall@10 with 10-70% removed was at or above a fresh build's, on
6k x 64 random vectors), but each keeps its slot's memory and is visited by searches, so a graph
at the limit holds 1/(1-0.25) = 1.33x the memory and search work of a fresh one. A rebuild costs
as much as adding every row again; at this share it comes after removals of a quarter of the
graph, so it is rare."""


class Corpus:
    """The decisions' texts for the BM25 index, added a page at a time: a digest of the keys and
    texts in order (what the BM25 index is a function of: a save whose digest is the last one's
    keeps its files, and then nothing is tokenised), and the texts, tokenised only when an index is
    built, a page at a time, each page's texts dropped as its ids are made (bm25s's `Tokenizer`,
    `words.corpus_tokenizer`, whose vocabulary grows with each page)."""

    def __init__(self) -> None:
        import hashlib

        import bm25s

        self._pages: list[list[str]] = []
        self._digest = hashlib.sha256(f"{VERSION} bm25s {bm25s.__version__}\n".encode())

    @classmethod
    def of(cls, keys: Sequence[str], texts: Sequence[str]) -> Corpus:
        corpus = cls()
        corpus.add(keys, texts)
        return corpus

    def add(self, keys: Sequence[str], texts: Sequence[str]) -> None:
        """The next decisions' texts (one per key, in the rows' order)."""
        for key, text in zip(keys, texts, strict=True):
            self._digest.update(key.encode("utf-8") + b"\0" + text.encode("utf-8") + b"\1")
        self._pages.append(list(texts))

    @property
    def digest(self) -> str:
        return self._digest.hexdigest()

    def tokenized(self) -> Any:
        """What `bm25s.BM25.index` takes: (each text's stemmed word ids, the vocabulary of stems).
        Consumes the texts."""
        import bm25s

        tokenizer = corpus_tokenizer()
        ids: list[list[int]] = []
        self._pages.reverse()
        while self._pages:
            page = self._pages.pop()
            ids += tokenizer.tokenize(
                page, update_vocab=True, return_as="ids", allow_empty=False, show_progress=False
            )
            del page
        return bm25s.tokenization.Tokenized(ids=ids, vocab=tokenizer.get_vocab_dict())

    def release(self) -> None:
        """Drop the texts (when the index was kept, or built)."""
        self._pages = []


@dataclass(frozen=True)
class IndexRows:
    """What a save indexes: one entry per answered decision (vectors: None when not embedded).

    `corpus`: the texts as a `Corpus`, for a caller that read them a page at a time (`texts` is
    then not read); `state`: what the store held when the rows were read (a digest, see
    `SidecarIndex.current`)."""

    keys: list[str]
    texts: list[str]
    dag_ids: list[str]
    task_ids: list[str]
    chosen: list[list[str]]
    answered_at: list[float]  # seconds since the epoch (UTC), 0 when unknown
    vectors: npt.NDArray[np.float32] | None
    model: str | None
    corpus: Corpus | None = None
    state: str | None = None


@dataclass
class BuildReport:
    """What a save did. `bm25`: "built", "kept" (the same keys and texts as the last save: its files
    linked) or "none" (no decisions). `ann`: "none" (no graph: below the threshold or no vectors),
    "built" (from scratch; `reason` says why), "updated" (`added` rows added, `removed` removed) or
    "unchanged"; `scrubbed`: removed vectors zeroed in the graph file, `tombstones`: its removed
    slots no add has reused yet.
    `current`: the store held what the index was saved from (`SidecarIndex.current`): nothing was
    read or written.
    Times in seconds: `bm25_seconds`, `ann_seconds` (graph work and its file), `seconds` (all)."""

    decisions: int = 0
    bm25: str = "none"
    ann: str = "none"
    reason: str = ""
    added: int = 0
    removed: int = 0
    scrubbed: int = 0
    tombstones: int = 0
    bm25_seconds: float = 0.0
    ann_seconds: float = 0.0
    seconds: float = 0.0
    generation: int = 0
    current: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON-able values (seconds rounded to ms)."""
        out = dict(self.__dict__)
        for k in ("bm25_seconds", "ann_seconds", "seconds"):
            out[k] = round(out[k], 3)
        return out


@dataclass(frozen=True)
class _Files:
    """The file names of one generation (`generation` None: a folder written before generations)."""

    folder: Path
    generation: int | None

    def _name(self, stem: str, suffix: str) -> Path:
        tail = "" if self.generation is None else f".{self.generation}"
        return self.folder / f"{stem}{tail}{suffix}"

    @property
    def bm25(self) -> Path:
        return self._name("bm25", "")

    @property
    def vectors(self) -> Path:
        return self._name("vectors", ".npy")

    @property
    def ann(self) -> Path:
        return self._name("vectors", ".usearch")

    @property
    def labels(self) -> Path:
        """Each graph row's label (a folder written before generations has none: see `_Previous`)."""
        return self._name("labels", ".npy")

    def names(self) -> set[str]:
        return {p.name for p in (self.bm25, self.vectors, self.ann, self.labels)}


_GENERATION_FILE = re.compile(r"^(?:bm25|vectors|labels)(?:\.\d+)?(?:\.npy|\.usearch)?$")


@dataclass
class _Previous:
    """The saved generation a save starts from."""

    files: _Files
    meta: dict[str, Any]
    keys: list[str]
    labels: npt.NDArray[np.uint64] | None
    vectors: npt.NDArray[np.float32] | None


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
        self._lock = threading.Lock()  # readers, and a save's commit
        self._build_lock = threading.Lock()  # one save at a time
        self._loaded_stamp: tuple[int, int] | None = None
        self._bm25: Any = None
        self._vectors: npt.NDArray[np.float32] | None = None
        self._meta: dict[str, Any] = {}
        self._key_index: dict[str, int] = {}
        self._labels: npt.NDArray[np.uint64] | None = None
        self._label_order: npt.NDArray[np.intp] = np.array([], dtype=np.intp)
        self._sorted_labels: npt.NDArray[np.uint64] = np.array([], dtype=np.uint64)
        self._dag = _Codes([])
        self._task = _Codes([])
        self._time: npt.NDArray[np.float64] = np.array([])
        self.last_build: BuildReport | None = None
        """What the last `build` in this process did."""

    # --- building -------------------------------------------------------------------------------

    def exists(self) -> bool:
        return (self.folder / "meta.json").is_file()

    def ann_file(self) -> Path | None:
        """The current generation's HNSW graph file, None when the index has no graph."""
        previous = self._previous(with_vectors=False)
        if previous is None or not previous.files.ann.is_file():
            return None
        return previous.files.ann

    def labels(self) -> dict[str, int]:
        """Each indexed decision's label in the HNSW graph, by key ({} without a graph)."""
        with self._lock:
            self._load()
            if self._ann is None or self._labels is None:
                return {}
            return dict(zip(self._meta["keys"], self._labels.tolist(), strict=True))

    def build(self, rows: IndexRows, *, rebuild: bool = False) -> BuildReport:
        """Save a new generation of the index for `rows` and make it the current one.

        BM25 and the vector matrix are written anew; the HNSW graph (from `ann_threshold` rows on)
        is the previous one with the changed rows removed and added (see the module's docstring),
        or a new one when there is none, the model or width changed, tombstones would pass
        `MAX_REMOVED_SHARE`, or `rebuild`. Readers in this process see the old generation until the
        new one is complete. Returns what was done (`BuildReport`)."""
        with self._build_lock:
            return self._build(rows, rebuild)

    def _build(self, rows: IndexRows, rebuild: bool) -> BuildReport:
        import bm25s

        began = time.perf_counter()
        self.folder.mkdir(parents=True, exist_ok=True)
        previous = self._previous(with_vectors=True)
        generation = int(previous.meta.get("generation") or 0) + 1 if previous else 1
        files = _Files(self.folder, generation)
        self._remove_unused(keep=(previous.files.names() if previous else set()) | {"meta.json"})
        report = BuildReport(decisions=len(rows.keys), generation=generation)
        corpus = rows.corpus if rows.corpus is not None else Corpus.of(rows.keys, rows.texts)
        texts = corpus.digest
        if rows.keys and previous and previous.meta.get("texts") == texts and previous.files.bm25.is_dir():
            _link_tree(previous.files.bm25, files.bm25)  # the same decisions and texts: the same index
            report.bm25 = "kept"
        elif rows.keys:
            retriever = bm25s.BM25()
            retriever.index(corpus.tokenized(), show_progress=False)
            retriever.save(str(files.bm25), show_progress=False)
            del retriever
            _sync_tree(files.bm25)
            report.bm25 = "built"
        corpus.release()  # before the graph is built: not both at once
        if report.bm25 == "built":
            give_back_freed_memory()
        report.bm25_seconds = time.perf_counter() - began
        matrix: npt.NDArray[np.float32] | None = None
        labels: npt.NDArray[np.uint64] | None = None
        next_label = int(previous.meta.get("next_label") or 0) if previous else 0
        if rows.vectors is not None and len(rows.vectors):
            matrix = np.ascontiguousarray(rows.vectors, dtype=np.float32)
            _save_npy(files.vectors, matrix)
            if len(matrix) >= self.ann_threshold:
                started = time.perf_counter()
                labels, next_label = self._save_ann(rows, matrix, previous, files, rebuild, report)
                _save_npy(files.labels, labels)
                report.ann_seconds = time.perf_counter() - started
        previous = None  # its mapped files are deleted below (Windows cannot delete a mapped file)
        meta = {
            "version": VERSION,
            "generation": generation,
            "model": rows.model if matrix is not None else None,
            "dimensions": int(matrix.shape[1]) if matrix is not None else None,
            "next_label": next_label,
            "texts": texts,
            "state": rows.state,
            "keys": rows.keys,
            "dag_ids": rows.dag_ids,
            "task_ids": rows.task_ids,
            "chosen": rows.chosen,
            "answered_at": rows.answered_at,
            "built_at": datetime.now(UTC).isoformat(),
        }
        staged = self.folder / "meta.json.tmp"
        with staged.open("w", encoding="utf-8") as out:
            json.dump(meta, out, ensure_ascii=False)
            out.flush()
            os.fsync(out.fileno())
        with self._lock:
            os.replace(staged, self.folder / "meta.json")  # the commit point
            _sync_dir(self.folder)
            self._loaded_stamp = None
            self._remove_unused(keep=files.names() | {"meta.json"})
        report.seconds = time.perf_counter() - began
        self.last_build = report
        return report

    def current(self, state: str) -> BuildReport | None:
        """When the saved index was made from a store in `state` (the digest the store gave its rows,
        `IndexRows.state`), what a save would do: nothing (`BuildReport.current`); else None."""
        with self._build_lock:
            previous = self._previous(with_vectors=False)
            if previous is None or previous.meta.get("state") != state:
                return None
            keys = previous.meta.get("keys", [])
            report = BuildReport(
                decisions=len(keys),
                bm25="kept" if keys else "none",
                ann="unchanged" if previous.files.ann.is_file() else "none",
                generation=int(previous.meta.get("generation") or 0),
                current=True,
            )
            self.last_build = report
            return report

    def _save_ann(
        self,
        rows: IndexRows,
        matrix: npt.NDArray[np.float32],
        previous: _Previous | None,
        files: _Files,
        rebuild: bool,
        report: BuildReport,
    ) -> tuple[npt.NDArray[np.uint64], int]:
        """Write this generation's graph: the previous one updated, else a new one. Returns the rows'
        labels and the next free label."""
        reason = _rebuild_reason(rows, matrix, previous, rebuild)
        if not reason and previous is not None:
            updated = _update_ann(matrix, rows.keys, previous, files, report)
            if not isinstance(updated, str):
                return updated
            reason = updated
        report.ann, report.reason = "built", reason
        report.added, report.removed, report.tombstones = len(matrix), 0, 0
        labels = np.arange(len(matrix), dtype=np.uint64)
        _build_ann(matrix, labels).save(str(files.ann))
        _sync_file(files.ann)
        return labels, len(matrix)

    def _previous(self, *, with_vectors: bool) -> _Previous | None:
        """The current generation as saved (None when there is none or it cannot be read)."""
        meta_file = self.folder / "meta.json"
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None
        files = _Files(self.folder, meta.get("generation"))
        keys: list[str] = meta.get("keys", [])
        labels: npt.NDArray[np.uint64] | None = None
        vectors: npt.NDArray[np.float32] | None = None
        if with_vectors:
            if files.generation is None:  # before generations: a row's label was its row number
                labels = np.arange(len(keys), dtype=np.uint64) if files.ann.is_file() else None
            elif files.labels.is_file():
                labels = np.load(files.labels)
            # Mapped, not read: the save compares them once, beside the new matrix and the graph.
            vectors = np.load(files.vectors, mmap_mode="r") if files.vectors.is_file() else None
        return _Previous(files, meta, keys, labels, vectors)

    def _remove_unused(self, keep: set[str]) -> None:
        """Delete files of other generations (and of an unfinished save) from the folder."""
        for path in self.folder.iterdir():
            if path.name in keep or not (_GENERATION_FILE.match(path.name) or path.name == "meta.json.tmp"):
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):  # still open elsewhere (Windows): the next save
                    path.unlink()

    # --- reading --------------------------------------------------------------------------------

    def _load(self) -> None:
        """(Re)load the files if they changed since the last read."""
        meta_file = self.folder / "meta.json"
        try:
            stat = meta_file.stat()
        except FileNotFoundError:
            self._loaded_stamp, self._meta, self._bm25, self._vectors = None, {}, None, None
            self._ann = None
            self._labels = None
            self._key_index = {}
            return
        stamp = (stat.st_mtime_ns, stat.st_ino)  # a save replaces the file: a new inode
        if stamp == self._loaded_stamp:
            return
        import bm25s

        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        files = _Files(self.folder, meta.get("generation"))
        bm25 = bm25s.BM25.load(str(files.bm25)) if files.bm25.is_dir() else None
        vectors = np.load(files.vectors) if files.vectors.is_file() else None
        ann = None
        labels: npt.NDArray[np.uint64] | None = None
        if files.ann.is_file():
            from usearch.index import Index

            ann = Index.restore(str(files.ann))
            labels = (  # before generations, a row's label was its row number
                np.arange(len(meta["keys"]), dtype=np.uint64)
                if files.generation is None
                else np.load(files.labels)
            )
        self._meta, self._bm25, self._vectors, self._ann = meta, bm25, vectors, ann
        self._labels = labels
        if labels is not None:
            self._label_order = np.argsort(labels, kind="stable")
            self._sorted_labels = labels[self._label_order]
        self._key_index = {key: i for i, key in enumerate(meta["keys"])}
        self._dag = _Codes(meta["dag_ids"])
        self._task = _Codes(meta["task_ids"])
        self._time = np.array(meta["answered_at"], dtype=np.float64)
        self._loaded_stamp = stamp

    def info(self) -> dict[str, Any]:
        """The index's model, dimensions and size ({} when there is no index). From what this
        process has loaded when that is current, else from `meta.json` alone: a save need not load
        the index it wrote (BM25, vectors and graph: 300 MB at 100k)."""
        with self._lock:
            try:
                stat = (self.folder / "meta.json").stat()
            except FileNotFoundError:
                return {}
            if (stat.st_mtime_ns, stat.st_ino) == self._loaded_stamp:
                meta, graph = self._meta, self._ann is not None
            else:
                previous = self._previous(with_vectors=False)
                if previous is None:
                    return {}
                meta, graph = previous.meta, previous.files.ann.is_file()
            return {
                "model": meta.get("model"),
                "dimensions": meta.get("dimensions"),
                "decisions": len(meta.get("keys", [])),
                "vector_index": "hnsw" if graph else "exact",
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
        rows = self._rows_of(np.asarray(matches.keys, dtype=np.uint64))
        keys = self._meta["keys"]
        ranked: list[tuple[str, float]] = []
        for row, distance in zip(rows.tolist(), np.asarray(matches.distances).tolist(), strict=True):
            if row >= 0 and (mask is None or mask[row]):
                ranked.append((keys[row], 1.0 - float(distance)))  # inner-product distance: 1 - cosine
        if len(ranked) < want:
            return None
        ranked.sort(key=lambda item: (-item[1], item[0]))
        return ranked[:want]

    def _rows_of(self, labels: npt.NDArray[np.uint64]) -> npt.NDArray[np.intp]:
        """The row of each graph label (-1 for a label no row has)."""
        at = np.searchsorted(self._sorted_labels, labels)
        inside = at < len(self._sorted_labels)
        found = np.full(len(labels), -1, dtype=np.intp)
        hit = inside.copy()
        hit[inside] = self._sorted_labels[at[inside]] == labels[inside]
        found[hit] = self._label_order[at[hit]]
        return found

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


def give_back_freed_memory() -> None:
    """Return the heap's free pages to the operating system (glibc's `malloc_trim`; elsewhere
    nothing). A closed database's buffer pool, and the engine's and Python's freed objects (a save's
    texts and tokens), are left as free pages scattered through the heap, which glibc keeps:
    loading 20k decisions into the embedded store with a close after each 1,000 grew from 250 to
    490 MB without it and stayed at 250 MB with it."""
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        _MALLOC_TRIM = False
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError, AttributeError):
                _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM: Any = None


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


def _build_ann(matrix: npt.NDArray[np.float32], labels: npt.NDArray[np.uint64]) -> Any:
    """A usearch HNSW graph over `matrix`'s rows (n x d, unit length) under `labels` (n).

    Inner product on unit vectors is cosine; connectivity 16 and expansion 128/64 are usearch's
    defaults, which gave recall@10 0.9985 against the exact scan on the 100k benchmark index
    (`bench.ann_vectors`)."""
    from usearch.index import Index

    index = Index(ndim=matrix.shape[1], metric="ip", dtype="f32")
    index.add(labels, matrix)
    return index


def _update_ann(
    matrix: npt.NDArray[np.float32],
    keys: Sequence[str],
    previous: _Previous,
    files: _Files,
    report: BuildReport,
) -> tuple[npt.NDArray[np.uint64], int] | str:
    """The previous graph with the rows that left or changed removed and the new or changed ones
    added, saved as `files.ann`, the removed vectors scrubbed from it: (labels, next free label).
    Or, when it should be built from scratch instead, why."""
    from usearch.index import Index

    assert previous.labels is not None and previous.vectors is not None  # `_rebuild_reason` checked
    graph = Index.restore(str(previous.files.ann))
    if graph is None or len(graph) != len(previous.labels):
        return "the saved graph does not match its labels"
    first = int(previous.meta.get("next_label") or int(previous.labels.max(initial=0)) + 1)
    labels, fresh, gone, next_label = _relabel(
        keys, matrix, previous.keys, previous.labels, previous.vectors, first
    )
    slots = max(int(graph.stats.nodes), len(matrix))  # an add reuses a removed row's slot first
    if slots - len(matrix) > MAX_REMOVED_SHARE * slots:
        return f"{slots - len(matrix)} of {slots} slots would be removed rows"
    report.added, report.removed = int(fresh.sum()), len(gone)
    report.ann = "updated" if report.added or report.removed else "unchanged"
    if report.removed:
        graph.remove(previous.labels[gone])
    if report.added:
        graph.add(labels[fresh], matrix[fresh])
    graph.save(str(files.ann))
    slots, report.tombstones = int(graph.stats.nodes), int(graph.stats.nodes) - len(graph)
    del graph
    scrubbed = _scrub(files.ann, previous.vectors[gone], matrix, slots) if report.removed else 0
    if scrubbed is None:  # rebuild rather than leave removed vectors in the file
        return "the graph file's layout is not the one known"
    report.scrubbed = scrubbed
    _sync_file(files.ann)
    return labels, next_label


def _rebuild_reason(
    rows: IndexRows, matrix: npt.NDArray[np.float32], previous: _Previous | None, rebuild: bool
) -> str:
    """Why the graph must be built from scratch ("" when the previous one can be updated)."""
    if rebuild:
        return "a rebuild was asked"
    if previous is None or previous.labels is None or not previous.files.ann.is_file():
        return "there was no graph"
    if previous.vectors is None or previous.meta.get("model") != rows.model:
        return "the embedding model changed"
    if previous.vectors.shape[1] != matrix.shape[1]:
        return "the embedding width changed"
    if not len(previous.labels) == len(previous.vectors) == len(previous.keys):
        return "the saved index is inconsistent"
    return ""


_CHUNK = 8192  # rows per step where a whole-matrix temporary would cost 100s of MB at 100k


def _relabel(
    keys: Sequence[str],
    matrix: npt.NDArray[np.float32],
    old_keys: Sequence[str],
    old_labels: npt.NDArray[np.uint64],
    old_vectors: npt.NDArray[np.float32],
    first: int,
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_], npt.NDArray[np.intp], int]:
    """Labels for the new rows: a key whose vector is bit-for-bit the same keeps its label, the
    others get new ones from `first` on. Returns (labels, the rows to add, the old rows to remove,
    the next free label)."""
    old_row = {key: i for i, key in enumerate(old_keys)}
    at = np.fromiter((old_row.get(key, -1) for key in keys), dtype=np.intp, count=len(keys))
    same = at >= 0
    for start in range(0, len(keys), _CHUNK):
        part = slice(start, start + _CHUNK)
        known = same[part].copy()
        unchanged = np.all(old_vectors[at[part][known]] == matrix[part][known], axis=1)
        view = same[part]
        view[known] = unchanged
    fresh = ~same
    count = int(fresh.sum())
    labels = np.empty(len(keys), dtype=np.uint64)
    labels[same] = old_labels[at[same]]
    labels[fresh] = np.arange(first, first + count, dtype=np.uint64)
    kept = np.zeros(len(old_keys), dtype=bool)
    kept[at[same]] = True
    return labels, fresh, np.flatnonzero(~kept), first + count


def _digests(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.uint64]:
    """A 64-bit digest of each row's bits (equal rows, equal digests; others almost never)."""
    width = matrix.shape[1]
    weights = np.random.default_rng(0x5EED).integers(1, 2**63, size=width, dtype=np.uint64) | np.uint64(1)
    out = np.empty(len(matrix), dtype=np.uint64)
    for start in range(0, len(matrix), _CHUNK):
        bits = np.asarray(matrix[start : start + _CHUNK]).view(np.uint32).astype(np.uint64)
        out[start : start + _CHUNK] = (bits * weights).sum(axis=1, dtype=np.uint64)
    return out


def _scrub(
    path: Path, removed: npt.NDArray[np.float32], live: npt.NDArray[np.float32], slots: int
) -> int | None:
    """Zero, in the saved graph file, every slot that holds a removed vector, so an erased
    decision's embedding does not stay on disk in a tombstone (usearch keeps a removed row's vector
    until its slot is reused). A removed vector bit-for-bit equal to a live one (two decisions with
    the same text) is left: that slot may be the live one, and its bytes disclose nothing the live
    row does not. Returns how many slots were zeroed, or None when the file is not laid out as
    usearch 2 saves a dense f32 index (uint32 rows, uint32 bytes per row, the rows, then the graph),
    checked by its header and by finding a live vector where it should be.
    """
    import struct

    removed = removed[np.any(removed != 0, axis=1)]
    width = live.shape[1]
    with path.open("rb") as raw:
        rows, row_bytes = struct.unpack("<II", raw.read(8))
    if rows != slots or row_bytes != width * 4 or 8 + rows * row_bytes > path.stat().st_size:
        return None
    stored = np.memmap(path, dtype=np.float32, mode="r+", offset=8, shape=(rows, width))
    try:
        in_file = _digests(stored)
        live_digests = _digests(live)
        if not np.isin(live_digests[np.any(live != 0, axis=1)][:1], in_file).all():
            return None
        if not len(removed):
            return 0
        removed_digests = _digests(removed)
        shared = np.isin(removed_digests, live_digests)
        for i in np.flatnonzero(shared):  # equal to a live vector: keep (see above)
            same = np.flatnonzero(live_digests == removed_digests[i])
            if any(np.array_equal(live[j].view(np.uint32), removed[i].view(np.uint32)) for j in same):
                removed_digests[i] = 0
        wanted = removed[removed_digests != 0]
        wanted_digests = removed_digests[removed_digests != 0]
        zeroed = 0
        for slot in np.flatnonzero(np.isin(in_file, wanted_digests)):
            bits = np.asarray(stored[slot]).view(np.uint32)
            matches = wanted[wanted_digests == in_file[slot]]
            if any(np.array_equal(bits, r.view(np.uint32)) for r in matches):
                stored[slot] = 0.0
                zeroed += 1
        stored.flush()
        return zeroed
    finally:
        del stored


def _link_tree(source: Path, target: Path) -> None:
    """`target` as a folder of hard links to `source`'s files (copies where links are refused)."""
    target.mkdir()
    for path in source.iterdir():
        try:
            os.link(path, target / path.name)
        except OSError:
            shutil.copy2(path, target / path.name)
    _sync_dir(target)


def _save_npy(path: Path, array: npt.NDArray[Any]) -> None:
    with path.open("wb") as out:
        np.save(out, array)
        out.flush()
        os.fsync(out.fileno())


def _sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX; elsewhere the rename is all there is)."""
    if os.name == "posix":
        _sync_file(folder)


def _sync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_file():
            _sync_file(path)
    _sync_dir(folder)
