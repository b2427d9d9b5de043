"""Corpus-index benchmark: build cost against the bare suffix sort, size, load, query latency.

    python -m bench.index --tokens 10000000 --vocab 32768 [--threads 1] [--real DIR]

Prints one JSON line. Builds run in child processes so that peak_rss_bytes (VmHWM of
the child that builds) is the build's own high-water mark; build_extra_rss_bytes subtracts
the child's RSS just before the build call (interpreter, numba and the input tokens already
in memory), which is what the build itself allocates. Latencies are medians of
time.perf_counter_ns around single calls on a warm index (kernels compiled, pages cached).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DOC_TOKENS = 130
SPAN = 16


def synthetic_corpus(n_tokens: int, vocab: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Zipf(1) unigram ids over a shuffled vocabulary, documents of 65..195 tokens."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, vocab + 1)
    cdf = np.cumsum(weights / weights.sum())
    ranks = np.searchsorted(cdf, rng.random(n_tokens), side="right").clip(max=vocab - 1)
    ids = rng.permutation(vocab)[ranks]
    tokens = ids.astype(np.uint16 if vocab <= 65_535 else np.uint32)
    lengths = rng.integers(DOC_TOKENS // 2, DOC_TOKENS * 3 // 2 + 1, n_tokens // DOC_TOKENS + 2)
    ends = np.cumsum(lengths)
    offsets = np.concatenate([[0], ends[ends < n_tokens], [n_tokens]]).astype(np.int64)
    return tokens, offsets


def peak_rss() -> int:
    """This process's peak resident memory, bytes: VmHWM, which starts afresh at exec
    (ru_maxrss carries the parent's peak over a fork and exec, so a child would report
    the parent's synthetic-corpus peak as its own)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("/proc/self/status has no VmHWM line (Linux only)")


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child_build(tokens_file: str, offsets_file: str, out: str, backend: str) -> dict[str, Any]:
    from retrollm.index import CorpusIndex

    tokens = np.load(tokens_file)
    offsets = np.load(offsets_file)
    CorpusIndex.build(tokens[:1000], [0, 1000], backend=backend)  # load compiled kernels
    before = rss_bytes()
    start = time.perf_counter()
    index = CorpusIndex.build(tokens, offsets, backend=backend, tokenizer_fingerprint="bench")
    build_s = time.perf_counter() - start
    peak = peak_rss()
    start = time.perf_counter()
    index.save(out)
    return {
        "build_s": build_s,
        "save_s": time.perf_counter() - start,
        "peak_rss_bytes": peak,
        "build_extra_rss_bytes": peak - before,
    }


def child_suffix_array(tokens_file: str) -> dict[str, Any]:
    from pydivsufsort import divsufsort

    tokens = np.load(tokens_file)
    divsufsort(tokens[:1000])
    start = time.perf_counter()
    divsufsort(tokens)
    return {"sa_only_s": time.perf_counter() - start}


def run_child(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.index", "--child", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_us(samples: list[int]) -> float:
    return round(float(np.median(samples)) / 1000, 2) if samples else float("nan")


def timed(call, *args) -> int:
    start = time.perf_counter_ns()
    call(*args)
    return time.perf_counter_ns() - start


def spans(offsets: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray:
    """Start positions of SPAN-token windows lying inside one document."""
    lengths = np.diff(offsets)
    docs = np.flatnonzero(lengths >= SPAN)
    picked = rng.choice(docs, count)
    return offsets[picked] + rng.integers(0, lengths[picked] - SPAN + 1)


def query_figures(index, tokens: np.ndarray, offsets: np.ndarray, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed + 1)
    patterns = [np.asarray(tokens[s : s + SPAN], dtype=np.int64) for s in spans(offsets, rng, 2000)]
    for pattern in patterns[:20]:  # warm-up: compile/load kernels, fault in hot pages
        index.locate(pattern)
        index.next_tokens(pattern[:2])
    count_ns = [timed(index.count, p) for p in patterns]
    locate_ns = [timed(index.locate, p[:4]) for p in patterns]

    ids, counts = index.next_tokens([])
    largest = int(ids[np.argmax(counts)])
    next_large_ns = [timed(index.next_tokens, [largest]) for _ in range(20)]
    near_20 = ids[np.argsort(np.abs(counts - 20))[:200]]
    next_small_ns = [timed(index.next_tokens, [int(t)]) for t in near_20]

    step_ns: list[int] = []
    for pattern in patterns[:500]:
        state = index.root()
        for token in pattern:
            start = time.perf_counter_ns()
            state = index.extend(state, token[None])[0]
            index.continuations(state)
            step_ns.append(time.perf_counter_ns() - start)
    n_docs = len(offsets) - 1
    restrict_ns = [
        timed(index.restrict, rng.choice(n_docs, min(25, n_docs), replace=False))
        for _ in range(200)
    ]
    return {
        "count_us": median_us(count_ns),
        "locate4_us": median_us(locate_ns),
        "next_large_us": median_us(next_large_ns),
        "next_large_count": int(counts.max()),
        "next_small_us": median_us(next_small_ns),
        "step_us_p50": median_us(step_ns),
        "step_us_p90": round(float(np.percentile(step_ns, 90)) / 1000, 2),
        "step_us_mean": round(float(np.mean(step_ns)) / 1000, 2),
        "restrict_ms": round(median_us(restrict_ns) / 1000, 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--vocab", type=int, default=32_768)
    parser.add_argument("--real", type=Path, help="folder with tokens.npy and doc_offsets.npy")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backend", default="pydivsufsort")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="also keep the built index here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, *rest = args.child
        result = child_build(*rest) if mode == "build" else child_suffix_array(*rest)
        print(json.dumps(result))
        return
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    work = Path(tempfile.mkdtemp(prefix="bench-index-"))
    try:
        if args.real:
            tokens = np.load(args.real / "tokens.npy", mmap_mode="r")
            offsets = np.load(args.real / "doc_offsets.npy").astype(np.int64)
            tokens_file, offsets_file = args.real / "tokens.npy", args.real / "doc_offsets.npy"
        else:
            tokens, offsets = synthetic_corpus(args.tokens, args.vocab, args.seed)
            tokens_file, offsets_file = work / "tokens.npy", work / "doc_offsets.npy"
            np.save(tokens_file, tokens)
            np.save(offsets_file, offsets)
        out = args.keep or work / "index"
        sa_only = run_child("sa", str(tokens_file))
        build = run_child("build", str(tokens_file), str(offsets_file), str(out), args.backend)

        from retrollm.index import CorpusIndex

        CorpusIndex.load(out)  # first import of the load path, not what is measured
        start = time.perf_counter()
        index = CorpusIndex.load(out, expected_tokenizer_fingerprint="bench")
        load_s = time.perf_counter() - start
        disk = sum(f.stat().st_size for f in Path(out).iterdir())
        n_tokens = int(tokens.shape[0])
        result = {
            "corpus": str(args.real) if args.real else "synthetic-zipf",
            "n_tokens": n_tokens,
            "n_docs": len(offsets) - 1,
            "vocab": args.vocab if not args.real else int(index.next_tokens([])[0].max()) + 1,
            "backend": args.backend,
            "threads": args.threads,
            "build_s": round(build["build_s"], 3),
            "sa_only_s": round(sa_only["sa_only_s"], 3),
            "build_over_sa": round(build["build_s"] / sa_only["sa_only_s"], 2),
            "peak_rss_bytes": build["peak_rss_bytes"],
            "build_extra_rss_bytes": build["build_extra_rss_bytes"],
            "build_extra_bytes_per_token": round(build["build_extra_rss_bytes"] / n_tokens, 2),
            "save_s": round(build["save_s"], 3),
            "disk_bytes": disk,
            "bytes_per_token": round(disk / n_tokens, 3),
            "load_s": round(load_s, 4),
            **query_figures(index, np.asarray(tokens), offsets, args.seed),
            "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        }
        print(json.dumps(result))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
