"""Search benchmark: build time, index memory, latency, throughput, cold load and recall of BM25 backends.

Backends, side by side in one run: ours (``swirl``), rank-bm25 (with our tokeniser and idf), and
bm25s (its own tokeniser, with our stopwords and stemmer; numba backend if installed). Corpora: the
real HotpotQA paragraph corpus with the real dev questions as queries, and synthetic corpora of
``--sizes`` paragraphs (Zipfian vocabulary, 60-100 words each, fixed seed) with question-like queries.

    python benchmarks/search_bench.py [--sizes 1000000] [--quick] [--backends swirl --keep-other-backends]

Writes ``benchmarks/results/search.json`` and ``search.md`` with the command that produced them.
rank-bm25 and bm25s take many minutes at 1M paragraphs: ``--keep-other-backends`` copies their rows
(and says from when) from the previous results rather than measuring them again.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import operator
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from swirl_env.data.corpus import Passage, default_corpus_path, load_corpus  # noqa: E402
from swirl_env.data.hotpotqa import read_hotpotqa  # noqa: E402
from swirl_env.data.paths import data_dir  # noqa: E402
from swirl_env.tools import bm25_fast  # noqa: E402
from swirl_env.tools.bm25 import STOPWORDS  # noqa: E402
from swirl_env.tools.search import BM25Search, Tokenizer  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FUNCTION_WORDS = (
    "the of and to in a is was for on as with by he that at from his it an were are which this be or has had not "
    "but their they its also first one two after who new have been her she all more when other there into only most "
    "than over between time during some these about such under later can then both while would made"
).split()
"""Commonest English words, in rough order of frequency: the head of the synthetic vocabulary."""


# --- synthetic data -------------------------------------------------------------------------------


def synthetic_corpus(n: int, seed: int = 0, vocabulary: int = 500_000) -> list[Passage]:
    """``n`` paragraphs of 60-100 words drawn from a Zipf(1) vocabulary whose head is real function words.

    Sentences start capitalised, so case variants occur as in real text. Deterministic in ``seed``.
    """
    rng = np.random.default_rng(seed)
    words = _vocabulary(vocabulary, rng)
    table = words + [w.capitalize() for w in words] + ["\n"]
    cdf = np.cumsum(1.0 / np.arange(1, vocabulary + 1))
    cdf /= cdf[-1]
    lengths = rng.integers(60, 101, n)
    texts: list[str] = []
    for lo in range(0, n, 20_000):
        sizes = lengths[lo : lo + 20_000]
        ids = np.searchsorted(cdf, rng.random(int(sizes.sum()))).clip(0, vocabulary - 1)
        starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        capital = rng.random(len(ids)) < 1 / 18  # about one sentence per 18 words
        capital[starts] = True
        ids[capital] += vocabulary
        ids = np.insert(ids, starts[1:], 2 * vocabulary)  # "\n" between paragraphs
        texts += " ".join(operator.itemgetter(*ids.tolist())(table)).split(" \n ")
    titles = [" ".join(words[i].capitalize() for i in pair) for pair in rng.integers(1000, vocabulary, (n, 2))]
    return [Passage(title, text) for title, text in zip(titles, texts)]


def _vocabulary(size: int, rng: np.random.Generator) -> list[str]:
    head = list(dict.fromkeys(FUNCTION_WORDS + sorted(STOPWORDS["en"])))
    lengths = np.clip(rng.poisson(6.5, 2 * size), 3, 14)  # twice as many: short draws repeat
    letters = rng.choice(np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", np.uint8), int(lengths.sum()))
    blob, ends = letters.tobytes().decode(), np.cumsum(lengths)
    known = set(head)
    tail = [w for w in dict.fromkeys(blob[e - n : e] for e, n in zip(ends.tolist(), lengths.tolist())) if w not in known]
    words = head + tail[: size - len(head)]
    assert len(words) == size, f"only {len(words)} distinct words"
    return words


def synthetic_queries(passages: list[Passage], n: int, head: dict[str, int], seed: int = 1) -> list[str]:
    """Queries of 8-15 words shaped like real questions: 40% of the words from ``head``, the rest content.

    ``head`` counts the very common words (stopwords and :data:`FUNCTION_WORDS`) in real questions,
    and is sampled as often as they occur there; half the content words come from a target
    paragraph, half from another (HotpotQA questions average 15.7 words, 41% of them head words).
    """
    rng = np.random.default_rng(seed)
    words_, counts = list(head), np.array(list(head.values()), float)
    common = set(FUNCTION_WORDS) | STOPWORDS["en"]
    queries = []
    for _ in range(n):
        target, other = ([w for w in passages[i].text.split() if w.lower() not in common] for i in rng.integers(0, len(passages), 2))
        length = int(rng.integers(8, 16))
        n_head = round(0.41 * length)
        n_content = length - n_head
        words = list(rng.choice(words_, n_head, p=counts / counts.sum()))
        words += list(rng.choice(target, (n_content + 1) // 2)) + list(rng.choice(other, n_content // 2))
        rng.shuffle(words)
        queries.append(" ".join(words))
    return queries


def head_words(questions: list[str]) -> dict[str, int]:
    """How often each stopword or function word occurs in the questions."""
    common = set(FUNCTION_WORDS) | STOPWORDS["en"]
    return dict(collections.Counter(w for q in questions for w in re.findall(r"\w+", q.lower()) if w in common))


# --- measurements ---------------------------------------------------------------------------------


def rss() -> int:
    return psutil.Process().memory_info().rss


def latencies(run, queries: list[str]) -> dict:
    wall, cpu = [], []
    for q in queries:
        t, c = time.perf_counter(), time.thread_time()
        run(q)
        cpu.append(time.thread_time() - c)
        wall.append(time.perf_counter() - t)
    ms = lambda xs, p: round(float(np.percentile(xs, p)) * 1000, 3)  # noqa: E731
    return {"queries": len(queries), "p50_ms": ms(wall, 50), "p95_ms": ms(wall, 95), "p99_ms": ms(wall, 99),
            "cpu_p50_ms": ms(cpu, 50), "cpu_p95_ms": ms(cpu, 95)}  # fmt: skip


def bench_swirl(passages: list[Passage], queries: list[str], workdir: Path) -> dict:
    gc.collect()
    before, t, c = rss(), time.perf_counter(), time.process_time()
    search = BM25Search(passages)
    out = {"build_s": round(time.perf_counter() - t, 2), "build_cpu_s": round(time.process_time() - c, 2)}
    out["query_path"] = "C kernel" if bm25_fast.AVAILABLE else "numpy"  # SWIRL_BM25_KERNEL=0 forces numpy
    index = search._engine
    vocab_bytes = sum(sys.getsizeof(term) + 100 for term in index.terms)  # str + list slot + dict entry
    out["index_mb"] = round((index.nbytes() + vocab_bytes) / 1e6, 1)
    out["index_mb_how"] = "array bytes + vocabulary objects"
    out["rss_delta_mb"] = round((rss() - before) / 1e6, 1)
    search.search(queries[0])
    out.update(latencies(search.search, queries))
    for workers in (1, 2):
        t = time.perf_counter()
        search.search_batch(queries, workers=workers)
        out[f"batch_qps_{workers}_threads"] = round(len(queries) / (time.perf_counter() - t))
    out.update(cold_start(passages, queries[0], workdir))
    return out


def cold_start(passages: list[Passage], query: str, workdir: Path) -> dict:
    """Write the corpus as JSONL, index it through the cache, then time a new process loading it."""
    path, cache = workdir / "corpus.jsonl", workdir / "cache"
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"title": p.title, "text": p.text}) + "\n" for p in passages)
    t = time.perf_counter()
    BM25Search.from_corpus(path, cache_dir=cache)
    first_cache_s = time.perf_counter() - t
    code = (
        "import time, json; t0 = time.perf_counter()\n"
        "from swirl_env.tools.search import BM25Search\n"
        "t1 = time.perf_counter()\n"
        f"s = BM25Search.from_corpus({str(path)!r}, cache_dir={str(cache)!r})\n"
        "t2 = time.perf_counter()\n"
        f"s.search({query!r})\n"
        "t3 = time.perf_counter()\n"
        "print(json.dumps([t1 - t0, t2 - t1, t3 - t2, s.loaded_from_cache]))\n"
    )
    root = str(Path(__file__).resolve().parents[1])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    imports, load, first, cached = json.loads(result.stdout.strip().splitlines()[-1])
    assert cached, "the new process rebuilt the index instead of loading the cache"
    return {"from_corpus_first_s": round(first_cache_s, 2), "cold_import_s": round(imports, 3),
            "cold_load_s": round(load, 3), "cold_first_query_ms": round(first * 1000, 2)}  # fmt: skip


def bench_rank_bm25(passages: list[Passage], queries: list[str], n_queries: int) -> dict:
    gc.collect()
    before, t = rss(), time.perf_counter()
    search = BM25Search(passages, backend="rank_bm25")
    out = {"build_s": round(time.perf_counter() - t, 2), "rss_delta_mb": round((rss() - before) / 1e6, 1)}
    bm25 = search._engine.bm25
    objects = sum(sys.getsizeof(d) + sum(map(sys.getsizeof, d.values())) for d in bm25.doc_freqs)
    objects += sys.getsizeof(bm25.idf) + sys.getsizeof(bm25.doc_freqs) + sys.getsizeof(bm25.doc_len)
    out["index_mb"], out["index_mb_how"] = round(objects / 1e6, 1), "sys.getsizeof of its dicts (keys shared)"
    out.update(latencies(search.search, queries[:n_queries]))
    out["batch_qps_1_threads"] = round(1000 / out["p50_ms"], 2)
    del search
    gc.collect()
    return out


def bench_bm25s(passages: list[Passage], queries: list[str], workdir: Path) -> dict:
    import bm25s
    import Stemmer

    stemmer, stop = Stemmer.Stemmer("english"), sorted(STOPWORDS["en"])
    backend = "numba" if _has("numba") else "numpy"
    tokenize = lambda texts: bm25s.tokenize(texts, stopwords=stop, stemmer=stemmer, show_progress=False)  # noqa: E731
    gc.collect()
    before, t = rss(), time.perf_counter()
    retriever = bm25s.BM25(method="lucene", backend=backend)
    retriever.index(tokenize([f"{p.title}\n{p.text}" for p in passages]), show_progress=False)
    out = {"build_s": round(time.perf_counter() - t, 2), "backend": backend, "rss_delta_mb": round((rss() - before) / 1e6, 1)}
    arrays = sum(a.nbytes for a in (retriever.scores["data"], retriever.scores["indices"], retriever.scores["indptr"]))
    out["index_mb"], out["index_mb_how"] = round(arrays / 1e6, 1), "array bytes"

    def run(q: str):
        return retriever.retrieve(tokenize([q]), k=5, show_progress=False)

    t = time.perf_counter()
    run(queries[0])  # numba compiles on first use
    out["first_query_ms"] = round((time.perf_counter() - t) * 1000, 1)
    out.update(latencies(run, queries))
    t = time.perf_counter()
    retriever.retrieve(tokenize(queries), k=5, show_progress=False, n_threads=2)
    out["batch_qps_2_threads"] = round(len(queries) / (time.perf_counter() - t))
    retriever.save(workdir / "bm25s")
    code = (
        "import time, json, bm25s, Stemmer; t0 = time.perf_counter()\n"
        f"r = bm25s.BM25.load({str(workdir / 'bm25s')!r}, mmap=True)\n"
        "t1 = time.perf_counter()\n"
        f"r.backend = {backend!r}\n"
        f"r.retrieve(bm25s.tokenize([{queries[0]!r}], stopwords={stop!r}, stemmer=Stemmer.Stemmer('english'), "
        "show_progress=False), k=5, show_progress=False)\n"
        "print(json.dumps([t1 - t0, time.perf_counter() - t1]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    load, first = json.loads(result.stdout.strip().splitlines()[-1])
    out.update({"cold_load_s": round(load, 3), "cold_first_query_ms": round(first * 1000, 1)})
    del retriever
    gc.collect()
    return out


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def recall_at_5(passages: list[Passage], questions) -> dict:
    """Share of the two gold paragraphs (supporting-fact titles) in the top 5, question text as query."""
    variants = {
        "no stopwords, no stemming": Tokenizer(stopwords=None, stemmer=None),
        "stopwords only": Tokenizer(stemmer=None),
        "stemming only": Tokenizer(stopwords=None),
        "stopwords + stemming (default)": Tokenizer(),
    }
    out = {}
    for name, tokenizer in variants.items():
        search = BM25Search(passages, tokenizer=tokenizer)
        found = [len(set(q.supporting_titles) & {h.title for h in search.search(q.question, k=5)}) for q in questions]
        out[name] = round(sum(found) / sum(len(set(q.supporting_titles)) for q in questions), 4)
    return out


# --- run and report -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000], help="synthetic corpus sizes")
    parser.add_argument("--quick", action="store_true", help="sizes 20000, 200 queries: a smoke run")
    parser.add_argument("--queries", type=int, default=1000, help="queries timed per corpus and backend")
    parser.add_argument("--rank-bm25-queries", type=int, default=5, help="rank-bm25 is slow: time only these")
    parser.add_argument("--backends", nargs="+", default=["swirl", "rank_bm25", "bm25s"])
    parser.add_argument("--keep-other-backends", action="store_true",
                        help="copy the rows of the backends not run from the previous results in --out")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.queries = [20_000], 200
    report = {"command": "python benchmarks/search_bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "machine": machine(), "corpora": {}}  # fmt: skip
    questions = read_hotpotqa(data_dir() / "hotpotqa/hotpot_dev_distractor_subset.json.gz")
    real = load_corpus(default_corpus_path())
    report["recall_at_5"] = recall_at_5(real, questions)
    print("recall@5", report["recall_at_5"], flush=True)
    corpora = [("hotpotqa paragraphs", lambda: (real, [q.question for q in questions][: args.queries]))]
    head = head_words([q.question for q in questions])
    for n in args.sizes:
        corpora.append((f"synthetic {n:,}", lambda n=n: _synthetic(n, args.queries, head)))
    for name, make in corpora:
        passages, queries = make()
        entry = report["corpora"][name] = {"passages": len(passages), "load_avg_start": os.getloadavg()[0]}
        for backend in args.backends:
            with tempfile.TemporaryDirectory() as tmp:
                if backend == "swirl":
                    entry[backend] = bench_swirl(passages, queries, Path(tmp))
                elif backend == "rank_bm25":
                    entry[backend] = bench_rank_bm25(passages, queries, args.rank_bm25_queries)
                elif backend == "bm25s" and _has("bm25s"):
                    entry[backend] = bench_bm25s(passages, queries, Path(tmp))
            print(name, backend, entry.get(backend), flush=True)
        entry["load_avg_end"] = os.getloadavg()[0]
        del passages
        gc.collect()
    if args.keep_other_backends:
        keep_other_backends(report, args.out / "search.json", args.backends)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "search.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "search.md").write_text(markdown(report))
    return report


def keep_other_backends(report: dict, previous: Path, ran: list[str]) -> None:
    """Copy into ``report`` the rows of the backends not in ``ran`` from the results file ``previous``."""
    if not previous.exists():
        raise SystemExit(f"--keep-other-backends copies rows from earlier results, but {previous} does not exist: "
                         "run once without it")
    old = json.loads(previous.read_text())
    for name, entry in report["corpora"].items():
        for backend, row in old["corpora"].get(name, {}).items():
            if isinstance(row, dict) and backend not in ran:
                entry[backend] = {"measured": "earlier", **row}
    report["kept_rows_from"] = {"date": old["machine"]["date"], "command": old["command"]}


def _synthetic(n: int, n_queries: int, head: dict[str, int]) -> tuple[list[Passage], list[str]]:
    t = time.perf_counter()
    passages = synthetic_corpus(n)
    print(f"generated {n:,} synthetic paragraphs in {time.perf_counter() - t:.1f} s", flush=True)
    return passages, synthetic_queries(passages, n_queries, head)


def machine() -> dict:
    return {"cpus": len(os.sched_getaffinity(0)), "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(), "numpy": np.__version__, "ram_gb": round(psutil.virtual_memory().total / 2**30),
            "date": time.strftime("%Y-%m-%d %H:%M")}  # fmt: skip


def markdown(report: dict) -> str:
    cell = lambda d, k: "–" if d.get(k) is None else str(d[k])  # noqa: E731
    kept = report.get("kept_rows_from")
    lines = [
        "# BM25 search benchmark", "", f"Command: `{report['command']}`  ", f"Machine: {report['machine']}", "",
        *([f"Rows `measured` `earlier` were not run again: they are copied from the previous results, dated {kept['date']},",
           f"command `{kept['command']}`. The load averages are this run's.", ""] if kept else []),
        "Latency: wall-clock per query, tokenising included, one pass after one warm-up query, on a shared 2-core",
        "machine whose load average is given per corpus; `cpu` columns are the thread's CPU time, which contention",
        "inflates less. Index memory: how each number was taken is in `index_mb_how`. rank-bm25 times only a",
        "handful of queries. `first_query_ms` is in-process (bm25s compiles its numba kernels then); `cold_*` is a",
        "new process loading the saved index.", "",
    ]  # fmt: skip
    cols = ["query_path", "build_s", "build_cpu_s", "index_mb", "index_mb_how", "p50_ms", "p95_ms", "p99_ms", "cpu_p50_ms",
            "cpu_p95_ms", "queries", "batch_qps_1_threads", "batch_qps_2_threads", "first_query_ms", "cold_load_s",
            "cold_first_query_ms", "measured"]  # fmt: skip
    for name, entry in report["corpora"].items():
        load = f"load average {entry['load_avg_start']:.1f} → {entry['load_avg_end']:.1f}"
        lines += [f"## {name} ({entry['passages']:,} passages; {load})", "", "| backend | " + " | ".join(cols) + " |",
                  "|---" * (len(cols) + 1) + "|"]  # fmt: skip
        lines += [f"| {b} | " + " | ".join(cell(entry[b], c) for c in cols) + " |" for b in entry if isinstance(entry[b], dict)]
        lines.append("")
    lines += ["## recall@5 of the gold paragraphs on HotpotQA dev (1267 questions, ours)", "", "| tokeniser | recall@5 |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in report["recall_at_5"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
