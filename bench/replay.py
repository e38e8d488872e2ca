"""The benchmark's synthetic history (bench.synthetic) as an Airflow, in memory or over HTTP.

`HistoryWorld` is the `contextgraph.ingest.source.memory.World` of a `History`: records are made
when asked for (nothing is held in memory), ``updated_at_gte``/``created_at_gte`` are bisections on
the history's clock, and only the first `visible` decisions exist yet. The sync reads it without
HTTP through `contextgraph.ingest.source.memory.MemorySource.over` (the ingest benchmark; its
``generating`` seconds are the time spent making records, left out of the measurement).

``python -m bench.replay --decisions N [--visible V] [--port P]`` serves it with
`contextgraph.ingest.source.replay` — a replay of the Airflow 3.3 REST API v2 with Airflow's shapes
and rules: ``POST /auth/token`` (201, ``access_token``; other requests need the bearer token, 401
without it), lists with ``limit``/``offset`` and ``total_entries``, ``limit`` capped at
``--maximum-page-limit`` (Airflow's ``[api] maximum_page_limit``, default 100), ``order_by`` (an
unknown field is a 400, as in Airflow), ``updated_at_gte`` on DAG runs and task instances,
``created_at_gte`` and ``response_received`` on HITL details, a 404 for an XCom that does not exist,
and a ``Date`` header on the synthetic clock (watermarks follow Airflow's clock, not ours) — so the
real AirflowSource talks to it over HTTP. ``POST /_bench/visible {"decisions": n}`` makes more of
the history visible (new decisions arriving). It prints ``READY <url>`` once it listens.
``python -m bench.replay --corpus bench/precedents`` serves the precedent corpus's records
(bench.corpus) the same way, for any client to read.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.synthetic import TASKS_PER_DAG, History
from contextgraph.ingest.source.memory import ALL, Lazy
from contextgraph.ingest.source.replay import Replay, make_server

TOKEN = "bench-replay-token"


class HistoryWorld:
    """The World of a `History` whose first `visible` decisions have happened (default: all)."""

    def __init__(self, history: History, visible: int | None = None) -> None:
        self.history = history
        self.visible = history.decisions if visible is None else visible
        self._matches: dict[tuple[str, str, int], list[int]] = {}

    def show(self, decisions: int) -> int:
        """Make the first `decisions` decisions visible (new ones arriving); returns how many are."""
        self.visible = min(int(decisions), self.history.decisions)
        self._matches.clear()
        return self.visible

    def now(self) -> datetime:
        return self.history.now(self.visible)

    def dags(self) -> Sequence[Any]:
        return self.history.dags()

    def tasks(self, dag_id: str) -> list[dict[str, Any]] | None:
        return self.history.tasks(dag_id)

    def assets(self) -> Sequence[Any]:
        return []

    def dag_runs(self, *, dag_id: str = ALL, updated_since: datetime | None = None) -> Sequence[Any]:
        return Lazy(self._of_dag(self._updated_since("runs", updated_since), dag_id), self.history.dag_run)

    def task_instances(self, *, dag_id: str = ALL, updated_since: datetime | None = None) -> Sequence[Any]:
        runs = self._of_dag(self._updated_since("tis", updated_since), dag_id)
        return Lazy(_ti_indices(runs), self._ti)

    def hitl_details(
        self,
        *,
        dag_id: str = ALL,
        created_since: datetime | None = None,
        response_received: bool | None = None,
    ) -> Sequence[Any]:
        first = (
            0
            if created_since is None
            else self.history.first_created_at_or_after(created_since, self.visible)
        )
        found: Sequence[int] = range(first, self.visible)
        if response_received is not None:
            ident = ("hitl", f"{created_since}|{response_received}", self.visible)
            if ident not in self._matches:
                self._matches[ident] = [i for i in found if self.history._received(i) == response_received]
            found = self._matches[ident]
        return Lazy(self._of_dag(found, dag_id), self.history.hitl_detail)

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any] | None:
        i = self.history.run_index(run_id)
        entry = self.history.xcom(i, task_id) if i is not None and i < self.visible else None
        if entry is None or entry["dag_id"] != dag_id or map_index != -1:
            return None
        return entry

    def hitl_try(
        self, dag_id: str, run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> dict[str, Any] | None:
        return None  # every HITL task of the history asked once

    def _of_dag(self, runs: Sequence[int], dag_id: str) -> Sequence[int]:
        """The runs of one DAG (`~`: all)."""
        return runs if dag_id == ALL else [i for i in runs if self.history.scenario(i).dag_id == dag_id]

    def _ti(self, j: int) -> dict[str, Any]:
        return self.history.task_instance(j // TASKS_PER_DAG, j % TASKS_PER_DAG)

    def _updated_since(self, kind: str, moment: datetime | None) -> Sequence[int]:
        if moment is None:
            return range(self.visible)
        ident = (kind, moment.isoformat(), self.visible)
        if ident not in self._matches:
            first = self.history.first_updated_at_or_after(moment, self.visible)
            self._matches[ident] = [
                i for i in range(first, self.visible) if self.history.run_updated_at(i) >= moment
            ]
        return self._matches[ident]


def _ti_indices(runs: Sequence[int]) -> Sequence[int]:
    if isinstance(runs, range):
        return range(runs.start * TASKS_PER_DAG, runs.stop * TASKS_PER_DAG)
    return _TiView(runs)


class _TiView(Sequence[int]):
    """Task-instance indices of a list of runs, without building the list."""

    def __init__(self, runs: Sequence[int]) -> None:
        self.runs = runs

    def __len__(self) -> int:
        return len(self.runs) * TASKS_PER_DAG

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[j] for j in range(*index.indices(len(self)))]
        return self.runs[index // TASKS_PER_DAG] * TASKS_PER_DAG + index % TASKS_PER_DAG


def replay(history: History, visible: int | None = None, maximum_page_limit: int = 100) -> Replay:
    """The HTTP replay of `history` (bearer token `TOKEN`, the ``/_bench/visible`` hook)."""
    world = HistoryWorld(history, visible)
    return Replay(
        world,
        token=TOKEN,
        maximum_page_limit=maximum_page_limit,
        hooks={"/_bench/visible": lambda body: {"visible": world.show(body["decisions"])}},
        keep_requests=False,
    )


def serve(decisions: int, visible: int, port: int, seed: int, maximum_page_limit: int) -> None:
    server = make_server(replay(History(decisions, seed), visible, maximum_page_limit), port)
    print(f"READY http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


def serve_corpus(folder: Path, port: int, maximum_page_limit: int) -> None:
    """Serve the records of the precedent corpus in `folder` (bench.corpus) instead of a history."""
    from bench.corpus import airflow_records, load_corpus

    world = airflow_records(load_corpus(folder))
    server = make_server(
        Replay(world, token=TOKEN, maximum_page_limit=maximum_page_limit, keep_requests=False), port
    )
    print(f"READY http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--decisions", type=int, help="size of the whole synthetic history")
    group.add_argument("--corpus", type=Path, help="serve the precedent corpus of this folder instead")
    parser.add_argument("--visible", type=int, help="decisions visible at start (default: all)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--maximum-page-limit", type=int, default=100)
    args = parser.parse_args()
    if args.corpus:
        serve_corpus(args.corpus, args.port, args.maximum_page_limit)
        return
    serve(args.decisions, args.visible or args.decisions, args.port, args.seed, args.maximum_page_limit)


if __name__ == "__main__":
    main()
