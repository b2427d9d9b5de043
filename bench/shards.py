"""Sharded against unsharded index over the same synthetic tokens: build, queries, memory.

    python -m bench.shards --tokens 2000000 --shards 1 4 [--vocab 32768] [--threads 1]
    python -m bench.shards --tokens 200000000 --shards 8 --fanout --workers 2

Prints one JSON line per index (the unsharded CorpusIndex first, then one ShardedIndex
per shard count) and a summary line. Each build and each query session runs in its own
child process, so its peak RSS (VmHWM) is that job's alone: a sharded build writes
every shard as soon as it is sorted, so its peak follows the shard size. The query child
memory-maps the saved index and reports its anonymous memory (RssAnon: what it allocated)
apart from mapped index pages (RssFile: page cache, shared, dropped under pressure).
Latencies are medians of single calls on a warm index, in microseconds (best of ROUNDS).

With --fanout, each sharded index is built the way the build_index stage builds it: the
tokens are cut into shard folders (what tokenize_corpus writes), then one
build_index_shard job per shard runs through retrollm.fanout.run_jobs, once one after
another in one process and once as Ray tasks on a local Ray of --workers CPUs. The row
gives both wall times (Ray's start-up apart), the largest peak RSS of a shard job
(VmHWM of the worker process that ran it) and checks that both index folders hold
the same bytes; the queries then run on the Ray-built index.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.index import median_us, peak_rss, rss_bytes, spans, synthetic_corpus, timed

PATTERNS = 1000
RESTRICT_DOCS = 25
# Each latency is the best of this many rounds' medians: on a shared machine a round can
# land on a busy stretch, and the best round is the one comparable across indexes.
ROUNDS = 3


def memory() -> dict[str, int]:
    """RssAnon and RssFile of this process, bytes (Linux /proc)."""
    found: dict[str, int] = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile"):
                found[key] = int(value.split()[0]) * 1024
    return found


def child_build(tokens_file: str, offsets_file: str, out: str, shards: str) -> dict[str, Any]:
    from retrollm.index import CorpusIndex, build_sharded

    tokens = np.load(tokens_file, mmap_mode="r")
    offsets = np.load(offsets_file)
    CorpusIndex.build(np.asarray(tokens[:1000]), [0, 1000])  # compile/load kernels first
    before = rss_bytes()  # interpreter, numba, kernels: not the build's own
    start = time.perf_counter()
    if int(shards) == 0:
        CorpusIndex.build(tokens, offsets, tokenizer_fingerprint="bench").save(out)
    else:
        per = -(-(len(offsets) - 1) // int(shards))
        build_sharded(tokens, offsets, per, tokenizer_fingerprint="bench", out=out)
    return {"build_s": time.perf_counter() - start, "build_peak_rss": peak_rss(), "before": before}


def shard_job(tokens: str, doc_offsets: str, out: str) -> dict[str, int]:
    """One build_index_shard job, with the peak RSS of the process that ran it."""
    from retrollm.index.sharded_build import build_index_shard

    manifest = {"schema_name": "index-shard", "schema_version": 1, "stage": "bench.shards"}
    before = rss_bytes()  # the worker's interpreter and kernels, not the job's
    counts = build_index_shard(tokens, doc_offsets, out, "pydivsufsort", "bench", manifest)
    return counts | {"peak_rss": peak_rss(), "extra_rss": peak_rss() - before}


def child_fanout(tokens_file: str, offsets_file: str, out: str, shards: str, workers: str) -> dict:
    """Shard folders of tokens, then the shard jobs sequentially and on a local Ray."""
    from retrollm.fanout import RayParams, init_ray, run_jobs
    from retrollm.index.shards import ShardEntry, shard_plan, write_manifest
    from retrollm.sharding import shard_folder

    tokens = np.load(tokens_file, mmap_mode="r")
    offsets = np.load(offsets_file)
    cuts = shard_plan(offsets, docs_per_shard=-(-(len(offsets) - 1) // int(shards)))
    start = time.perf_counter()
    calls, entries = [], []
    for k in range(len(cuts) - 1):
        a, b = int(cuts[k]), int(cuts[k + 1])
        folder = Path(out) / "tokens" / shard_folder(k)
        folder.mkdir(parents=True)
        np.save(folder / "tokens.npy", tokens[offsets[a] : offsets[b]])
        np.save(folder / "doc_offsets.npy", offsets[a : b + 1] - offsets[a])
        calls.append(
            {"tokens": str(folder / "tokens.npy"), "doc_offsets": str(folder / "doc_offsets.npy")}
        )
        entries.append(
            ShardEntry(shard_folder(k), a, b - a, int(offsets[a]), int(offsets[b] - offsets[a]))
        )
    split_s = time.perf_counter() - start
    figures: dict[str, Any] = {"split_s": split_s}
    ray = RayParams(num_cpus=int(workers), object_store_mb=256)
    for mode in ("sequential", "ray"):
        index = Path(out) / mode
        index.mkdir()
        jobs = [call | {"out": str(index / shard_folder(k))} for k, call in enumerate(calls)]
        if mode == "ray":
            started = time.perf_counter()
            init_ray(ray)
            figures["ray_init_s"] = time.perf_counter() - started
        start = time.perf_counter()
        done = run_jobs(shard_job, jobs, ray if mode == "ray" else RayParams(enabled=False))
        figures[f"{mode}_build_s"] = time.perf_counter() - start
        figures[f"{mode}_job_peak_rss"] = max(d["peak_rss"] for d in done)
        figures[f"{mode}_job_extra_rss"] = max(d["extra_rss"] for d in done)
        write_manifest(index, entries, "bench", "pydivsufsort")
    import ray as ray_module

    ray_module.shutdown()
    sequential, parallel = Path(out) / "sequential", Path(out) / "ray"
    figures["same_bytes"] = all(
        (parallel / f.relative_to(sequential)).read_bytes() == f.read_bytes()
        for f in sequential.rglob("*")
        if f.is_file()
    )
    shutil.rmtree(sequential)
    shutil.rmtree(Path(out) / "tokens")
    for child in parallel.iterdir():
        child.rename(Path(out) / child.name)
    parallel.rmdir()
    return figures


def child_query(tokens_file: str, offsets_file: str, index_dir: str, seed: str) -> dict[str, Any]:
    from retrollm.index import load_index

    tokens = np.load(tokens_file, mmap_mode="r")
    offsets = np.load(offsets_file)
    rng = np.random.default_rng(int(seed))
    starts = spans(offsets, rng, PATTERNS)
    patterns = [np.asarray(tokens[s : s + 16], dtype=np.int64) for s in starts]
    chosen = [rng.choice(len(offsets) - 1, RESTRICT_DOCS, replace=False) for _ in range(100)]
    start = time.perf_counter()
    index = load_index(index_dir, expected_tokenizer_fingerprint="bench")
    load_s = time.perf_counter() - start
    loaded = memory()
    for pattern in patterns[:20]:  # warm-up: kernels, hot pages
        index.locate(pattern[:4])
        index.next_tokens(pattern[:2])

    def best(measure: Any) -> float:
        return min(median_us(measure()) for _ in range(ROUNDS))

    figures = {
        "count16_us": best(lambda: [timed(index.count, p) for p in patterns]),
        "next2_us": best(lambda: [timed(index.next_tokens, p[:2]) for p in patterns]),
        "locate4_us": best(lambda: [timed(index.locate, p[:4]) for p in patterns]),
        "clue_step_us": best(lambda: steps(index, patterns[:300])),
        "restrict_us": best(lambda: [timed(index.restrict, docs) for docs in chosen]),
    }
    views = [index.restrict(docs) for docs in chosen]
    evidence = []
    for docs in chosen:
        doc = int(docs[0])
        begin, end = int(offsets[doc]), int(offsets[doc + 1])
        evidence.append(np.asarray(tokens[begin : min(end, begin + 16)], np.int64))
    # A restricted view is asked only about its own documents, as the decoder does.
    figures["evidence_step_us"] = best(
        lambda: [ns for v, e in zip(views, evidence, strict=True) for ns in steps(v, [e])]
    )
    after = memory()
    # Same answers everywhere (tests/test_index_sharded.py proves it; this shows it here).
    answers = [index.count(p[:3]) + int(index.next_tokens(p[:2])[1].sum()) for p in patterns]
    return {
        **figures,
        "answers_checksum": int(np.sum(answers)),
        "load_s": round(load_s, 4),
        "rss_anon_after_load": loaded.get("RssAnon", -1),
        "rss_anon_after_queries": after.get("RssAnon", -1),
        "rss_file_after_queries": after.get("RssFile", -1),
        "query_peak_rss": peak_rss(),
    }


def steps(index: Any, patterns: list[np.ndarray]) -> list[int]:
    """Decoder-style steps (extend by one token, then list what may follow), timed each."""
    out: list[int] = []
    for pattern in patterns:
        state = index.root()
        for token in pattern.tolist():
            started = time.perf_counter_ns()
            state = index.extend([state], [token])[0]
            index.continuations(state)
            out.append(time.perf_counter_ns() - started)
    return out


def build_figures(build: dict[str, Any]) -> dict[str, Any]:
    if "build_s" in build:
        return {
            "build_s": round(build["build_s"], 3),
            "build_peak_rss": build["build_peak_rss"],
            "build_extra_rss": build["build_peak_rss"] - build["before"],
        }
    return {
        "split_s": round(build["split_s"], 3),
        "sequential_build_s": round(build["sequential_build_s"], 3),
        "ray_build_s": round(build["ray_build_s"], 3),
        "ray_init_s": round(build["ray_init_s"], 3),
        "job_peak_rss": build["ray_job_peak_rss"],  # a Ray worker process's peak
        "job_extra_rss": build["ray_job_extra_rss"],  # above the worker's own start
        "same_bytes": build["same_bytes"],
    }


def run_child(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.shards", "--child", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2_000_000)
    parser.add_argument("--vocab", type=int, default=32_768)
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sessions", type=int, default=2, help="query sessions per index")
    parser.add_argument(
        "--fanout", action="store_true", help="build shards as stage jobs: sequential vs Ray"
    )
    parser.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, *rest = args.child
        children = {"build": child_build, "fanout": child_fanout, "query": child_query}
        print(json.dumps(children[mode](*rest)))
        return
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench-shards-"))
    try:
        tokens, offsets = synthetic_corpus(args.tokens, args.vocab, args.seed)
        files = [str(work / "tokens.npy"), str(work / "doc_offsets.npy")]
        np.save(files[0], tokens)
        np.save(files[1], offsets)
        configs = [0, *args.shards]  # 0: the plain CorpusIndex
        builds = {}
        for k in configs:
            out = str(work / f"index-{k}")
            if args.fanout and k > 0:
                builds[k] = run_child("fanout", *files, out, str(k), str(args.workers))
            else:
                builds[k] = run_child("build", *files, out, str(k))
        # Query sessions take turns (all indexes, then all again), so a busy stretch of a
        # shared machine does not fall on one index only; each figure is its best session.
        sessions: dict[int, list[dict[str, Any]]] = {k: [] for k in configs}
        for _ in range(args.sessions):
            for k in configs:
                sessions[k].append(
                    run_child("query", *files, str(work / f"index-{k}"), str(args.seed))
                )
        rows = []
        for k in configs:
            out, build = work / f"index-{k}", builds[k]
            query = dict(sessions[k][0])
            for key in [key for key in query if key.endswith("_us")]:
                query[key] = min(session[key] for session in sessions[k])
            disk = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
            row = {
                "index": "unsharded" if k == 0 else f"{k} shards",
                "n_tokens": int(tokens.shape[0]),
                "n_docs": len(offsets) - 1,
                "bytes_per_token": round(disk / tokens.shape[0], 3),
                **build_figures(build),
                **query,
            }
            rows.append(row)
            print(json.dumps(row))
        keys = ("build_s", "build_extra_rss", "sequential_build_s", "ray_build_s")
        keys += ("job_peak_rss", "job_extra_rss", "count16_us", "next2_us", "locate4_us")
        keys += ("clue_step_us", "evidence_step_us", "rss_anon_after_queries")
        summary = {r["index"]: {k: r[k] for k in keys if k in r} for r in rows}
        print(json.dumps({"summary": summary}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
