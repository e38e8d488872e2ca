"""contextgraph benchmarks: ingest, precedent queries, sync and fetch, on Neo4j and the embedded store.

    .venv/bin/python -m bench.run [--sizes 1000,10000,100000] [--stores neo4j|embedded|both|none] [--no-fetch]

For each store and size (decisions), each step in a subprocess of its own (so peak RSS is per
step and nothing is shared between them):

1. ceiling — the fastest plain bulk load of the same nodes and edges (bench/ceiling.py);
2. ingest — the real `Sync` over a replay of the synthetic history (bench/synthetic.py), from
   API payloads to a committed graph (mapping, writing) plus the embedding pass when
   contextgraph.ingest.embeddings and a model are available; decisions/s, elements/s, ratio to the
   ceiling, peak RSS. Time spent generating the payloads is measured and left out;
3. queries — p50/p95 of `find_similar_decisions` (query embedding included), when it exists;
4. sync — the real `AirflowSource` over HTTP against a replay of Airflow 3.3's REST API
   (bench/replay.py): an idle sync, then one after 100 new decisions arrived.

Then, unless --no-fetch: fetch — pages/s and decisions/s of reading ≥1k HITL details from a
real Airflow (started here, decisions inserted into its metadata DB with bench/airflow_seed.py),
per page size.

Neo4j: NEO4J_URI (its database is WIPED) or a Neo4j 5.26 started by tests/neo4j_server.py.
Results: a table on stdout, bench/results/<timestamp>.json and bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SHARED_MODEL = ROOT.parent / "shared" / "models" / "m2v-minilm-l6-256"
#: Decisions the history holds beyond those ingested: the 100 that arrive for the sync benchmark.
NEW_DECISIONS = 100
REPLAY_USER = ("bench", "bench")


# --- helpers ---------------------------------------------------------------------------------------


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _machine() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_gb = round(int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024, 1)
    import importlib.util

    import neo4j

    packstream = "rust (neo4j-rust-ext)" if importlib.util.find_spec("neo4j._rust") else "python"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "neo4j_driver": neo4j.__version__,
        "packstream": packstream,
    }


def _embedder() -> Any | None:
    """The embedding model when contextgraph.ingest.embeddings exists and a model is at hand."""
    try:
        from contextgraph.ingest.embeddings import Model2VecEmbedder
    except ImportError:
        return None
    model = os.environ.get("CONTEXTGRAPH_EMBEDDING_MODEL") or str(SHARED_MODEL)
    if not Path(model).is_dir():
        return None
    return Model2VecEmbedder(model)


def _open_store(spec: dict[str, Any]) -> Any:
    from pydantic import SecretStr

    from contextgraph.config import Neo4jSettings
    from contextgraph.store import EmbeddedStore, Neo4jStore

    if spec["store"] == "neo4j":
        settings = Neo4jSettings(uri=spec["uri"], username=spec["user"], password=SecretStr(spec["password"]))
        return Neo4jStore.connect(settings, batch_size=spec.get("batch_size", 1000))
    return EmbeddedStore(Path(spec["path"]), batch_size=spec.get("batch_size", 1000))


def _wipe_neo4j(store: Any) -> None:
    """Empty the database in short transactions: relationships first, then nodes.

    (One `DETACH DELETE` of a 100k-decision graph, even `IN TRANSACTIONS`, runs for minutes
    without answering, and the driver gives up on the connection; 50,000 a transaction ran past
    the test server's 256 MiB `db.memory.transaction.max`.)
    """
    for cypher in (
        "MATCH ()-[r]->() WITH r LIMIT 5000 DELETE r RETURN count(r) AS c",
        "MATCH (n) WITH n LIMIT 5000 DETACH DELETE n RETURN count(n) AS c",
    ):
        while store._write(cypher, {})[0]["c"]:
            pass


def _fresh(spec: dict[str, Any]) -> Any:
    """An empty store with the schema (Neo4j wiped; a new embedded file)."""
    if spec["store"] == "embedded":
        path = Path(spec["path"])
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        for extra in path.parent.glob(path.name + ".*"):
            extra.unlink()
    store = _open_store(spec)
    if spec["store"] == "neo4j":
        _wipe_neo4j(store)
    store.ensure_schema()
    return store


# --- workers (each runs in a subprocess of its own) -----------------------------------------------


def work_ceiling(spec: dict[str, Any]) -> dict[str, Any]:
    from bench import ceiling
    from bench.synthetic import History

    history = History(spec["size"] + NEW_DECISIONS, spec["seed"])
    store = _fresh(spec)
    load = _load()
    chunks = ceiling.graph_chunks(history, spec["size"], chunk=spec.get("ceiling_chunk", 2000))
    if spec["store"] == "neo4j":
        result = ceiling.neo4j_ceiling(
            store._driver, store.database, chunks, rows_per_tx=spec["ceiling_rows"]
        )
        _wipe_neo4j(store)
    else:
        # Ladybug holds buffer-pool memory per COPY until the database is closed (the store's own
        # writes recycle it too): reopen every 5 chunks, untimed; a 100k ceiling filled the pool.
        result, seen = ceiling.CeilingResult(), set[str]()
        while group := list(itertools.islice(chunks, 5)):
            part = ceiling.embedded_ceiling(store._connection(), iter(group), seen)
            result.seconds += part.seconds
            result.nodes += part.nodes
            result.edges += part.edges
            store.close()
    store.close()
    if spec["store"] == "embedded":
        shutil.rmtree(spec["path"], ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            Path(spec["path"]).unlink()
    return {
        "seconds": round(result.seconds, 3),
        "nodes": result.nodes,
        "edges": result.edges,
        "elements_per_s": round(result.elements / result.seconds) if result.seconds else None,
        "load": [load, _load()],
    }


def work_ingest(spec: dict[str, Any]) -> dict[str, Any]:
    from bench.replay import HistoryWorld
    from bench.synthetic import History
    from contextgraph.ingest.source.memory import MemorySource
    from contextgraph.ingest.sync import Sync, SyncOptions

    history = History(spec["size"] + NEW_DECISIONS, spec["seed"])
    world = HistoryWorld(history, spec["size"])
    source = MemorySource.over(world, url=spec["replay_url"], watermarks=True)
    store = _fresh(spec)
    embedder = _embedder() if spec["embed"] else None
    load = _load()
    profiler = None
    if spec.get("profile"):
        from pyinstrument import Profiler

        profiler = Profiler()
        profiler.start()
    began = time.perf_counter()
    options = SyncOptions(page_size=spec["page_size"], write_behind=spec.get("write_behind", True))
    report = Sync(source, store, options).run()
    sync_seconds = time.perf_counter() - began - source.generating
    embed_seconds = None
    if embedder is not None:
        from contextgraph.ingest.embeddings import embed_pending

        embed_seconds = embed_pending(store, embedder).seconds
    if profiler is not None:
        profiler.stop()
        out = Path(spec["profile"])
        out.write_text(profiler.output_text(unicode=True, color=False, show_all=False))
    store.close()
    total = sync_seconds + (embed_seconds or 0.0)
    elements = sum(report.created.values()) + sum(report.updated.values())
    return {
        "decisions": report.fetched["HITL details"],
        "rejected": len(report.rejected),
        "elements": elements,
        "sync_seconds": round(sync_seconds, 3),
        "generation_seconds": round(source.generating, 3),
        "embed_seconds": round(embed_seconds, 3) if embed_seconds is not None else None,
        "embedding_model": embedder.name if embedder is not None else None,
        "decisions_per_s": round(spec["size"] / total) if total else None,
        "elements_per_s": round(elements / sync_seconds) if sync_seconds else None,
        "peak_rss_mb": _peak_rss_mb(),
        "load": [load, _load()],
    }


def work_queries(spec: dict[str, Any]) -> dict[str, Any]:
    try:
        from contextgraph.retrieval.precedents import find_similar_decisions
    except ImportError:
        return {"skipped": "contextgraph.retrieval.precedents is not there yet"}
    from bench.synthetic import History

    history = History(spec["size"] + NEW_DECISIONS, spec["seed"])
    embedder = _embedder()
    store = _open_store(spec)
    queries = []
    for j in range(spec["queries"]):
        i = spec["size"] + j % NEW_DECISIONS  # decisions not in the graph: the cases at hand
        record = history.hitl_detail(i)
        scenario = history.scenario(i)
        queries.append((f"{record['subject']}\n{record['body']}", (scenario.dag_id, scenario.review)))
    for text, point in queries[:3]:  # warm-up: caches, query plans, the model
        find_similar_decisions(store, embedder, text, point=point, k=5)
    load = _load()
    times = []
    found = 0
    deadline = time.perf_counter() + spec.get("query_budget_s", 120)
    for text, point in queries:
        began = time.perf_counter()
        found += len(find_similar_decisions(store, embedder, text, point=point, k=5))
        times.append((time.perf_counter() - began) * 1000)
        if began > deadline and len(times) >= 20:
            break  # a slow store: enough samples for p50/p95 within the time budget
    # The same-run baseline: what any answer costs before ranking — embedding the query and one
    # trivial round trip to the store.
    floor = []
    for text, _point in queries[: len(times)]:
        began = time.perf_counter()
        if embedder is not None:
            embedder.embed([text])
        store.query("RETURN 1 AS one", {})
        floor.append((time.perf_counter() - began) * 1000)
    index = store.refresh_indexes()  # what the embedded store searched: "hnsw" or "exact"; {} on Neo4j
    store.close()
    times.sort()
    floor.sort()
    return {
        "baseline_p50_ms": round(statistics.median(floor), 1),
        "baseline_p95_ms": round(floor[max(0, int(len(floor) * 0.95) - 1)], 1),
        "queries": len(times),
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[max(0, int(len(times) * 0.95) - 1)], 1),
        "max_ms": round(times[-1], 1),
        "mean_results": round(found / len(times), 2),
        "mode": "hybrid" if embedder is not None else "text",
        "peak_rss_mb": _peak_rss_mb(),  # the querying process: store, index, model
        "vector_index": index.get("vector_index"),
        "load": [load, _load()],
    }


def work_sync(spec: dict[str, Any]) -> dict[str, Any]:
    import httpx
    from pydantic import SecretStr

    from contextgraph.config import AirflowSettings
    from contextgraph.ingest.source import AirflowSource
    from contextgraph.ingest.sync import Sync

    settings = AirflowSettings(
        url=spec["replay_url"], username=REPLAY_USER[0], password=SecretStr(REPLAY_USER[1])
    )
    store = _open_store(spec)
    load = _load()
    out: dict[str, Any] = {}
    # The first idle sync after the ingest runs lookup queries the ingest never ran (Neo4j plans them
    # then); the repeat is what an hourly idle sync costs.
    for name in ("idle", "idle_repeat"):
        with AirflowSource(settings) as source:
            out[name] = _sync_summary(Sync(source, store).run())
    httpx.post(f"{spec['replay_url']}/_bench/visible", json={"decisions": spec["size"] + spec["new"]})
    with AirflowSource(settings) as source:
        out["new"] = _sync_summary(Sync(source, store).run())
    store.close()
    out["load"] = [load, _load()]
    return out


def _sync_summary(report: Any) -> dict[str, Any]:
    return {
        "seconds": round(report.seconds, 3),
        "api_calls": report.api_calls,
        "fetched": dict(report.fetched),
        "written": report.written,
        "new_decisions": report.created.get("Decision", 0),
    }


WORKERS = {"ceiling": work_ceiling, "ingest": work_ingest, "queries": work_queries, "sync": work_sync}


def run_json(
    args: list[str],
    *,
    failed: str,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    error: type[BaseException] = RuntimeError,
) -> Any:
    """Run `python -m <args>` from the repository root in a fresh interpreter and return its last
    stdout line as JSON. Raises `error` ("<failed>:" and the tail of its stderr) when it fails;
    subprocess.TimeoutExpired after `timeout` seconds."""
    proc = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise error(f"{failed}:\n{(proc.stderr or proc.stdout)[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _run_worker(name: str, spec: dict[str, Any], timeout: float = 3600) -> dict[str, Any]:
    """Run one step in a fresh interpreter; its last stdout line is its JSON result."""
    result: dict[str, Any] = run_json(
        ["bench.run", "--worker", name, "--spec", json.dumps(spec)],
        failed=f"bench step {name} ({spec['store']}, {spec['size']}) failed",
        timeout=timeout,
    )
    return result


# --- servers --------------------------------------------------------------------------------------


@contextlib.contextmanager
def neo4j_server(data_dir: Path | None = None, keep: bool = False) -> Iterator[dict[str, str]]:
    """NEO4J_URI when set (its database is wiped), else a Neo4j 5.26 of our own: in `data_dir`
    (kept) or a temporary folder (removed), left running with `keep`."""
    if os.environ.get("NEO4J_URI"):
        yield {
            "uri": os.environ["NEO4J_URI"],
            "user": os.environ.get("NEO4J_USERNAME", "neo4j"),
            "password": os.environ.get("NEO4J_PASSWORD", ""),
        }
        return
    sys.path.insert(0, str(ROOT))
    from tests.neo4j_server import Neo4jServer

    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
    server = Neo4jServer(data_dir)
    server.start()
    try:
        yield {"uri": server.uri, "user": server.username, "password": server.password}
    finally:
        if not keep:
            server.stop()
            if data_dir is None:
                shutil.rmtree(server.data_dir, ignore_errors=True)


@contextlib.contextmanager
def replay_server(decisions: int, visible: int, port: int, seed: int) -> Iterator[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.replay",
            "--decisions",
            str(decisions),
            "--visible",
            str(visible),
            "--port",
            str(port),
            "--seed",
            str(seed),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"the replay server did not start: {line!r}")
        yield line.split()[1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- fetch from a real Airflow --------------------------------------------------------------------


def fetch_benchmark(decisions: int, page_sizes: list[int], repeats: int = 3) -> dict[str, Any]:
    """Read ≥`decisions` HITL details from a real Airflow at each page size (best of `repeats`)."""
    sys.path.insert(0, str(ROOT))
    from pydantic import SecretStr

    from contextgraph.config import AirflowSettings
    from contextgraph.ingest.source import AirflowSource
    from tests.airflow_server import AirflowServer

    limit = str(max(page_sizes))
    server = AirflowServer(
        env={"AIRFLOW__API__MAXIMUM_PAGE_LIMIT": limit}, wait_for_dags=["ai_support_ticket_system"]
    )
    server.start()
    try:
        assert server.home is not None
        env = server._environment(server.home)
        env["PYTHONPATH"] = str(ROOT)
        began = time.perf_counter()
        seed_info = run_json(
            ["bench.airflow_seed", "--decisions", str(decisions)], failed="seeding Airflow failed", env=env
        )
        seed_info["wall_seconds"] = round(time.perf_counter() - began, 2)
        rows = []
        for page in page_sizes:
            settings = AirflowSettings(
                url=server.url, username=server.username, password=SecretStr(server.password), page_size=page
            )
            best: dict[str, Any] | None = None
            for _ in range(repeats):
                with AirflowSource(settings) as source:
                    list(source.dags())  # log in and warm the connection outside the timing
                    calls = source.calls
                    load = _load()
                    t = time.perf_counter()
                    n = sum(1 for _ in source.hitl_details())
                    seconds = time.perf_counter() - t
                    pages = source.calls - calls
                if best is None or seconds < best["seconds"]:
                    best = {
                        "page_size": page,
                        "decisions": n,
                        "pages": pages,
                        "seconds": round(seconds, 3),
                        "pages_per_s": round(pages / seconds, 1),
                        "decisions_per_s": round(n / seconds),
                        "load": load,
                    }
            assert best is not None
            rows.append(best)
        return {"airflow": "3.3.2 (airflow standalone, SQLite)", "seeded": seed_info, "by_page_size": rows}
    finally:
        server.stop()


# --- the table ------------------------------------------------------------------------------------


def table(results: dict[str, Any]) -> str:
    lines = []
    new = results["settings"].get("new_decisions_for_sync", 100)
    head = (
        "| store | decisions | ingest dec/s | elements/s | ceiling el/s | ratio | peak RSS MB "
        f"| query p50/p95 ms (baseline p50/p95) | idle sync s, 1st / repeat (calls) "
        f"| +{new} sync s (calls) | load (ceiling / ingest / queries / sync) |"
    )
    lines += [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results["runs"]:
        ing, ceil, q, s = r["ingest"], r["ceiling"], r.get("queries") or {}, r.get("sync") or {}
        ratio = f"{r['ratio']:.0%}" if r.get("ratio") else "-"
        ceiling = f"{ceil['elements_per_s']:,}" if ceil.get("elements_per_s") else "-"
        query = f"{q['p50_ms']:.0f} / {q['p95_ms']:.0f}" if "p50_ms" in q else "-"
        if "baseline_p50_ms" in q:
            query += f" ({q['baseline_p50_ms']:.0f} / {q['baseline_p95_ms']:.0f})"
        loads = " / ".join(
            f"{step['load'][0][0]:.1f}" if isinstance(step, dict) and step.get("load") else "-"
            for step in (ceil, ing, q, s)
        )
        idle = "-"
        if "idle" in s:
            repeat = f" / {s['idle_repeat']['seconds']:.2f}" if "idle_repeat" in s else ""
            idle = f"{s['idle']['seconds']:.2f}{repeat} ({s['idle']['api_calls']})"
        arrived = f"{s['new']['seconds']:.2f} ({s['new']['api_calls']})" if "new" in s else "-"
        if "error" in ing:
            lines.append(f"| {r['store']} | {r['size']:,} | failed | | | | | | | | {loads} |")
            continue
        lines.append(
            f"| {r['store']} | {r['size']:,} | {ing['decisions_per_s']:,} | {ing['elements_per_s']:,} "
            f"| {ceiling} | {ratio} | {ing['peak_rss_mb']:.0f} "
            f"| {query} | {idle} | {arrived} | {loads} |"
        )
    fetch = results.get("fetch")
    if fetch and "by_page_size" in fetch:
        lines += [
            "",
            "| fetch page size | HITL details | pages | pages/s | decisions/s |",
            "|---:|---:|---:|---:|---:|",
        ]
        for f in fetch["by_page_size"]:
            lines.append(
                f"| {f['page_size']} | {f['decisions']:,} | {f['pages']} | {f['pages_per_s']:,} "
                f"| {f['decisions_per_s']:,} |"
            )
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------------------


def save(results: dict[str, Any], out: Path, stamp: str) -> None:
    """Write <stamp>.json and latest.json (after every run too, so a failure keeps what was measured)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in (f"{stamp}.json", "latest.json"):
        (out / name).write_text(json.dumps(results, indent=2, default=str) + "\n")


STORES = ("neo4j", "embedded")


def parse_stores(text: str) -> list[str]:
    """``--stores``: ``neo4j``, ``embedded``, a comma list of them, ``both`` or ``none``.

    Returns the store names in the order given (``both`` is ``neo4j,embedded``); raises
    ``argparse.ArgumentTypeError`` naming the unknown word and the accepted ones.
    """
    stores: list[str] = []
    for word in (w.strip().lower() for w in text.split(",")):
        if word in ("", "none"):
            continue
        names = list(STORES) if word == "both" else [word]
        for name in names:
            if name not in STORES:
                raise argparse.ArgumentTypeError(
                    f"unknown store {word!r}: give neo4j, embedded, both or none (comma-separated)"
                )
            if name not in stores:
                stores.append(name)
    return stores


def run(args: argparse.Namespace, stamp: str) -> dict[str, Any]:
    sizes = [int(s) for s in args.sizes.split(",")]
    stores: list[str] = args.stores
    steps = {s.strip() for s in args.steps.split(",")} | {"ingest"}
    embed = not args.no_embed
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.run", *sys.argv[1:]]),
        "machine": _machine(),
        "load_at_start": _load(),
        "settings": {
            "seed": args.seed,
            "sync_page_size": args.page_size,
            "write_behind": not args.serial_writes,
            "store_batch_size": args.batch_size,
            "ceiling_rows_per_tx": args.ceiling_rows,
            "ceiling_chunk_decisions": args.ceiling_chunk,
            "new_decisions_for_sync": args.new,
        },
        "runs": [],
    }
    workdir = Path(tempfile.mkdtemp(prefix="contextgraph-bench-"))
    with contextlib.ExitStack() as stack:
        conn = stack.enter_context(neo4j_server()) if "neo4j" in stores else {}
        for store in stores:
            for size in sizes:
                port = _free_port()
                spec: dict[str, Any] = {
                    "store": store,
                    "size": size,
                    "seed": args.seed,
                    "embed": embed,
                    "page_size": args.page_size,
                    "write_behind": not args.serial_writes,
                    "batch_size": args.batch_size,
                    "ceiling_rows": args.ceiling_rows,
                    "ceiling_chunk": args.ceiling_chunk,
                    "queries": args.queries,
                    "new": min(args.new, NEW_DECISIONS),
                    "replay_url": f"http://127.0.0.1:{port}",
                    "path": str(workdir / f"{store}-{size}.lbdb"),
                    **conn,
                }
                if args.profile:
                    spec["profile"] = str(workdir / f"profile-{store}-{size}.txt")
                if store == "neo4j" and size == sizes[0] and not args.no_warmup:
                    # A fresh JVM compiles its hot paths during the first minute: warm it up first, so
                    # neither the ceiling nor the ingest measured after it pays for that.
                    _say("neo4j: warm-up (1,000 decisions, not measured)")
                    warm = {**spec, "size": 1000, "embed": False}
                    _run_worker("ceiling", warm)
                    _run_worker("ingest", warm)
                row: dict[str, Any] = {"store": store, "size": size, "ceiling": {}, "ratio": None}
                for step in ("ceiling", "ingest", "queries", "sync"):
                    if step not in steps:
                        continue
                    _say(f"{store} {size:,}: {step}")
                    try:
                        with contextlib.ExitStack() as during:
                            if step == "sync":
                                during.enter_context(
                                    replay_server(size + NEW_DECISIONS, size, port, args.seed)
                                )
                            row[step] = _run_worker(step, spec)
                    except Exception as exc:  # keep going; the results say what failed
                        row[step] = {"error": str(exc)[-3000:]}
                        _say(f"{store} {size:,}: {step} failed: {str(exc)[-500:]}")
                if row["ceiling"].get("elements_per_s") and row["ingest"].get("elements_per_s"):
                    ratio = row["ingest"]["elements_per_s"] / row["ceiling"]["elements_per_s"]
                    row["ratio"] = round(ratio, 3)
                if args.profile:
                    row["profile"] = Path(spec["profile"]).read_text()
                results["runs"].append(row)
                save(results, args.out, stamp)
                _say(json.dumps({k: v for k, v in row.items() if k != "profile"}))
    shutil.rmtree(workdir, ignore_errors=True)
    if not args.no_fetch:
        _say(f"fetch: real Airflow with {args.fetch_decisions:,} HITL details")
        try:
            pages = [int(p) for p in args.fetch_page_sizes.split(",")]
            results["fetch"] = fetch_benchmark(args.fetch_decisions, pages)
        except Exception as exc:  # keep the other results; say why this one is missing
            results["fetch"] = {"error": f"{type(exc).__name__}: {exc}"[:3000]}
            _say(f"fetch failed: {exc}")
    results["load_at_end"] = _load()
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return results


def _say(text: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S} load {_load()[0]}] {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sizes", default="1000,10000,100000", help="decisions per run, comma-separated")
    parser.add_argument(
        "--stores",
        type=parse_stores,
        default="both",
        help="neo4j, embedded, both or none (or a comma list, run in that order)",
    )
    parser.add_argument("--steps", default="ceiling,ingest,queries,sync", help="which steps (ingest always)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--page-size", type=int, default=500, help="records per sync write page")
    parser.add_argument(
        "--serial-writes",
        action="store_true",
        help="ingest without write-behind (each page written before the next is read)",
    )
    parser.add_argument("--batch-size", type=int, default=1000, help="rows per store write transaction")
    parser.add_argument("--ceiling-rows", type=int, default=5000, help="rows per transaction of the ceiling")
    parser.add_argument(
        "--ceiling-chunk", type=int, default=2000, help="decisions mapped at a time by the ceiling"
    )
    parser.add_argument("--queries", type=int, default=100, help="precedent queries timed per size")
    parser.add_argument("--new", type=int, default=100, help="decisions that arrive before the 2nd sync")
    parser.add_argument("--no-embed", action="store_true", help="skip the embedding pass of the ingest")
    parser.add_argument("--no-warmup", action="store_true", help="skip warming up Neo4j's JVM first")
    parser.add_argument("--no-fetch", action="store_true", help="skip the real-Airflow fetch benchmark")
    parser.add_argument("--fetch-decisions", type=int, default=1000)
    parser.add_argument("--fetch-page-sizes", default="50,100,500,1000")
    parser.add_argument("--profile", action="store_true", help="pyinstrument profile of each ingest")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the JSON results")
    parser.add_argument("--show", type=Path, help="print the table of a results JSON and stop")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.show:
        shown = json.loads(args.show.read_text())
        print(table(shown))
        print(f"\nmachine: {shown['machine']}; load {shown['load_at_start']} → {shown.get('load_at_end')}")
        return 0
    if args.worker:
        print(json.dumps(WORKERS[args.worker](json.loads(args.spec))), flush=True)
        return 0
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results = run(args, stamp)
    save(results, args.out, stamp)
    text = table(results)
    print(text)
    print(f"\nmachine: {results['machine']}; load {results['load_at_start']} → {results['load_at_end']}")
    print(f"results: {args.out / (stamp + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
