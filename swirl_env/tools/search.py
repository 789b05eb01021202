"""The search tool: BM25 over a ``{title, text}`` paragraph corpus, indexed once and cached on disk.

``BM25Search`` answers a query with the top-k passages rendered as ``title: text`` blocks. The
index (see :mod:`swirl_env.tools.bm25`) is built in seconds per million paragraphs and
cached under ``$SWIRL_CACHE_DIR/bm25`` (default ``~/.cache/swirl/bm25``), keyed by a hash of the
corpus, the tokeniser, ``k1``, ``b`` and the format version; a later process memory-maps it in
milliseconds. ``backend="rank_bm25"`` scores with the rank-bm25 library instead (slow; a reference).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import uuid
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from swirl_env.data.corpus import Passage, load_corpus
from swirl_env.data.paths import resolve
from swirl_env.tools.base import ToolError
from swirl_env.tools.bm25 import STOPWORDS, Index, Tokenizer
from swirl_env.tools.bm25_build import build_index

__all__ = ["STOPWORDS", "BM25Search", "Hit", "Tokenizer", "default_cache_dir", "get_search"]

FORMAT_VERSION = 2
"""Bumped whenever the cached files or the scoring change; old caches are then ignored."""
BACKENDS = ("swirl", "rank_bm25")


@dataclass(frozen=True)
class Hit:
    """One retrieved passage: its title and text, BM25 score and position in the corpus."""

    title: str
    text: str
    score: float
    doc_id: int


class BM25Search:
    """BM25 search over passages; a :class:`~swirl_env.tools.base.Tool` (``<search_query>...</search_query>``).

    Args:
        passages: the corpus; ``Passage(title, text)`` each, searched as ``title`` + ``text``.
        top_k: passages returned by :meth:`__call__` (and by :meth:`search` unless ``k`` is given).
        tokenizer: turns queries and passages into terms.
        k1, b: BM25 parameters (Lucene's idf, ``log(1 + (N - df + 0.5) / (df + 0.5))``).
        backend: ``"swirl"`` (this package's index) or ``"rank_bm25"`` (the rank-bm25 library,
            with the same idf; slow, kept as a reference).

    Example:
        >>> from swirl_env.data.corpus import Passage
        >>> search = BM25Search([Passage("Paris", "Paris is the capital of France."),
        ...                      Passage("Rome", "Rome is the capital of Italy.")], top_k=1)
        >>> search("capital of Italy")
        'Rome: Rome is the capital of Italy.'
        >>> [hit.doc_id for hit in search.search("capital", k=2)]  # a tie goes to the lower id
        [0, 1]
    """

    name = "search"
    tag = "search_query"

    def __init__(
        self,
        passages: Sequence[Passage],
        *,
        top_k: int = 5,
        tokenizer: Tokenizer = Tokenizer(),
        k1: float = 1.5,
        b: float = 0.75,
        backend: str = "swirl",
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"expected backend in {BACKENDS}, actual {backend!r}")
        texts = (f"{p.title}\n{p.text}" for p in passages)
        engine = build_index(texts, tokenizer, k1=k1, b=b) if backend == "swirl" else _RankBM25(texts, tokenizer, k1, b)
        self._setup(passages, engine, top_k, tokenizer, loaded_from_cache=False)

    def _setup(self, passages: Sequence[Passage], engine, top_k: int, tokenizer: Tokenizer, loaded_from_cache: bool):
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"expected top_k to be a positive int, actual {top_k!r}")
        self.passages, self.top_k, self.tokenizer = passages, top_k, tokenizer
        self._engine = engine
        self.loaded_from_cache = loaded_from_cache
        """True when the index was read from the disk cache rather than built."""

    @classmethod
    def from_corpus(cls, path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None, **kwargs) -> BM25Search:
        """Search a ``{title, text}`` JSONL corpus file, with the index cached on disk (``backend="swirl"``).

        Example:
            >>> from swirl_env.data.corpus import default_corpus_path
            >>> search = BM25Search.from_corpus(default_corpus_path())
            >>> search.search("Gian Carlo Menotti composer", k=1)[0].title
            'Gian Carlo Menotti'
        """
        path = resolve((), "wikipedia", path)
        if kwargs.get("backend", "swirl") != "swirl":
            return cls(load_corpus(path), **kwargs)
        folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        return cls._cached(_file_digest(path, folder), lambda: load_corpus(path), folder, **kwargs)

    @classmethod
    def from_passages(
        cls, passages: Sequence[Passage], *, cache_dir: str | os.PathLike | None = None, **kwargs
    ) -> BM25Search:
        """Like the constructor, but the index is cached on disk, keyed by the passages' content."""
        if kwargs.get("backend", "swirl") != "swirl":
            return cls(passages, **kwargs)
        folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        return cls._cached(_passages_digest(passages), lambda: passages, folder, **kwargs)

    @classmethod
    def _cached(cls, digest: str, get_passages, folder: Path, *, top_k=5, tokenizer=Tokenizer(), k1=1.5, b=0.75, backend="swirl"):
        key = _cache_key(digest, tokenizer, k1, b)
        search = object.__new__(cls)
        loaded = _load_cache(folder / key)
        if loaded is not None:
            search._setup(loaded[1], loaded[0], top_k, tokenizer, loaded_from_cache=True)
            return search
        passages = get_passages()
        index = build_index((f"{p.title}\n{p.text}" for p in passages), tokenizer, k1=k1, b=b)
        _save_cache(folder, key, index, passages)
        search._setup(passages, index, top_k, tokenizer, loaded_from_cache=False)
        return search

    def with_top_k(self, top_k: int) -> BM25Search:
        """The same index and passages (shared, not copied), returning ``top_k`` passages."""
        search = object.__new__(type(self))
        search._setup(self.passages, self._engine, top_k, self.tokenizer, self.loaded_from_cache)
        return search

    def __len__(self) -> int:
        return len(self.passages)

    def search(self, query: str, k: int | None = None) -> list[Hit]:
        """The ``k`` (default ``top_k``) best passages for ``query``, best first; [] if no term matches.

        Deterministic: equal scores are ordered by corpus position.
        """
        return self._search_terms(self.tokenizer(query), k)

    def _search_terms(self, terms: list[str], k: int | None) -> list[Hit]:
        if k is not None and (not isinstance(k, int) or k < 1):
            raise ValueError(f"expected k to be a positive int or None (top_k), actual {k!r}")
        docs, scores = self._engine.top_k(self._engine.term_ids(terms), k or self.top_k)
        return [self._hit(int(d), float(s)) for d, s in zip(docs, scores)]

    def search_batch(self, queries: Iterable[str], k: int | None = None, *, workers: int = 1) -> list[list[Hit]]:
        """:meth:`search` for each query, in order, on ``workers`` threads.

        The compiled kernel releases the GIL while it scores, but on 2 cores two threads answered 3621
        queries/s against 3512 for one at 1M passages (``benchmarks/results/search.md``); one thread
        leaves the other core to other work, hence the default.
        """
        queries = list(queries)
        if workers <= 1:
            return [self.search(query, k) for query in queries]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda query: self.search(query, k), queries, chunksize=8))

    def __call__(self, query: str) -> str:
        """The top-k passages as ``title: text`` blocks separated by a blank line.

        Raises:
            ToolError: when the query has no searchable word, or when nothing matches.
        """
        terms = self.tokenizer(query)
        if not terms:
            raise ToolError(
                f"The query {query!r} has no searchable words: it is empty, punctuation, or only stopwords "
                "(like 'the', 'of', 'which'). Search for names or content words instead."
            )
        hits = self._search_terms(terms, None)
        if not hits:
            raise ToolError(f"No results for {query!r}: none of its words occur in the corpus. Try other words.")
        return "\n\n".join(f"{hit.title}: {hit.text}" for hit in hits)

    def _hit(self, doc: int, score: float) -> Hit:
        passage = self.passages[doc]
        return Hit(passage.title, passage.text, score, doc)


class _RankBM25:
    """The rank-bm25 library behind the index interface, with Lucene's idf (rank-bm25 floors negative idf)."""

    def __init__(self, texts: Iterable[str], tokenizer: Tokenizer, k1: float, b: float) -> None:
        from rank_bm25 import BM25Okapi

        class LuceneIdfBM25(BM25Okapi):
            def _calc_idf(self, nd: dict) -> None:
                n = self.corpus_size
                self.idf = {word: float(np.log1p((n - df + 0.5) / (df + 0.5))) for word, df in nd.items()}

        self.bm25 = LuceneIdfBM25([tokenizer(text) for text in texts], k1=k1, b=b)

    def term_ids(self, terms: list[str]) -> list[str]:
        return [t for t in terms if t in self.bm25.idf]

    def top_k(self, terms: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        if not terms:
            return np.zeros(0, np.int64), np.zeros(0)
        scores = self.bm25.get_scores(terms)
        docs = np.flatnonzero(scores > 0)
        order = np.lexsort((docs, -scores[docs]))[:k]
        return docs[order], scores[docs[order]]


# --- the disk cache ---------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$SWIRL_CACHE_DIR/bm25`` if the variable is set, else ``~/.cache/swirl/bm25``."""
    root = os.environ.get("SWIRL_CACHE_DIR")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "swirl") / "bm25"


def _cache_key(digest: str, tokenizer: Tokenizer, k1: float, b: float) -> str:
    spec = {"format": FORMAT_VERSION, "corpus": digest, "tokenizer": tokenizer.fingerprint(), "k1": k1, "b": b}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:24]


def _file_digest(path: Path, folder: Path) -> str:
    """sha256 of a corpus file, remembered in ``folder`` per (path, size, mtime): a big file is hashed once."""
    stat = path.stat()
    memo_file, entry = folder / "file_digests.json", f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    if isinstance(memo, dict) and isinstance(memo.get(entry), str):
        return memo[entry]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    memo = {**(memo if isinstance(memo, dict) else {}), entry: "file:" + h.hexdigest()}
    try:  # best effort: another process may write it too, the last whole file wins
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".tmp-digests-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.write_text(json.dumps(dict(list(memo.items())[-1000:])))
        os.replace(tmp, memo_file)
    except OSError:
        pass
    return memo[entry]


def _passages_digest(passages: Sequence[Passage]) -> str:
    h = hashlib.sha256()
    for field in ("title", "text"):
        values = [getattr(p, field) for p in passages]
        h.update(np.array([len(v) for v in values], np.int64).tobytes())  # lengths make the join unambiguous
        h.update("".join(values).encode("utf-8", "surrogatepass"))
    return "passages:" + h.hexdigest()


def _save_cache(root: Path, key: str, index: Index, passages: Sequence[Passage]) -> None:
    """Write into a temporary folder, then rename it into place: a crash never leaves a partial cache."""
    tmp = root / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir(parents=True)
        index.save(tmp)
        _PassageStore.save(tmp, passages)
        meta = {"format": FORMAT_VERSION, "key": key, "n_docs": index.n_docs}
        (tmp / "meta.json").write_text(json.dumps(meta))
        os.replace(tmp, root / key)
    except OSError as e:
        if not (root / key / "meta.json").exists():  # another process may have won the race, which is fine
            warnings.warn(f"could not write the BM25 index cache under {root} ({e}); set SWIRL_CACHE_DIR to a writable folder")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load_cache(folder: Path) -> tuple[Index, Sequence[Passage]] | None:
    """The cached index and passages, or None if absent or unreadable (a broken cache is removed)."""
    if not folder.is_dir():
        return None
    try:
        meta = json.loads((folder / "meta.json").read_text())
        index = Index.load(folder)
        passages = _PassageStore.load(folder)
        if meta["format"] != FORMAT_VERSION or meta["key"] != folder.name or not meta["n_docs"] == index.n_docs == len(passages):
            raise ValueError(f"meta.json {meta} does not match the files")
        if np.any(np.diff(index.indptr) < 0):
            raise ValueError("postings offsets are not ascending")
        return index, passages
    except (OSError, ValueError, KeyError, TypeError) as e:
        warnings.warn(f"ignoring a broken BM25 index cache at {folder} ({e}); rebuilding it")
        shutil.rmtree(folder, ignore_errors=True)
        return None


class _PassageStore(Sequence):
    """Passages read lazily from the cache: titles and texts as UTF-8 blobs with int64 offsets."""

    def __init__(self, blobs: dict[str, np.ndarray], offsets: dict[str, np.ndarray]) -> None:
        self._blobs, self._offsets = blobs, offsets

    def __len__(self) -> int:
        return len(self._offsets["text"]) - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(f"passage index {i} out of range for {len(self)} passages")
        i %= len(self)
        return Passage(*(self._field(name, i) for name in ("title", "text")))

    def _field(self, name: str, i: int) -> str:
        lo, hi = self._offsets[name][i : i + 2]
        return self._blobs[name][lo:hi].tobytes().decode("utf-8", "surrogatepass")

    @staticmethod
    def save(folder: Path, passages: Sequence[Passage]) -> None:
        for name in ("title", "text"):
            encoded = [getattr(p, name).encode("utf-8", "surrogatepass") for p in passages]
            offsets = np.zeros(len(encoded) + 1, np.int64)
            np.cumsum([len(e) for e in encoded], out=offsets[1:])
            (folder / f"{name}s.bin").write_bytes(b"".join(encoded))
            np.save(folder / f"{name}_offsets.npy", offsets)

    @classmethod
    def load(cls, folder: Path) -> _PassageStore:
        blobs, offsets = {}, {}
        for name in ("title", "text"):
            offsets[name] = np.load(folder / f"{name}_offsets.npy", mmap_mode="r")
            size = (folder / f"{name}s.bin").stat().st_size
            if size != offsets[name][-1]:
                raise ValueError(f"{name}s.bin holds {size} bytes, its offsets say {offsets[name][-1]}")
            blobs[name] = np.memmap(folder / f"{name}s.bin", np.uint8, "r").view(np.ndarray) if size else np.zeros(0, np.uint8)
            offsets[name] = offsets[name].view(np.ndarray)
        if len(offsets["title"]) != len(offsets["text"]):
            raise ValueError("titles and texts disagree on the number of passages")
        return cls(blobs, offsets)


# --- one index per process ------------------------------------------------------------------------

_SHARED: dict[tuple, BM25Search] = {}
_SHARED_LOCK = threading.Lock()


def get_search(
    path: str | os.PathLike | None = None,
    *,
    passages: Sequence[Passage] | None = None,
    top_k: int = 5,
    cache_dir: str | os.PathLike | None = None,
    **kwargs,
) -> BM25Search:
    """A search tool over a corpus file or passages, loaded once per process and shared by every caller.

    Many environments in one process then share one index; each gets its own ``top_k``. A corpus
    file goes through the disk cache; passages are indexed in memory (on disk too if ``cache_dir``).

    Example:
        >>> from swirl_env.data.corpus import default_corpus_path
        >>> get_search(default_corpus_path())._engine is get_search(default_corpus_path(), top_k=2)._engine
        True
    """
    if (path is None) == (passages is None):
        raise ValueError("expected exactly one of path=... (a corpus file) or passages=...")
    settings = tuple(sorted(kwargs.items()))
    if path is not None:
        path = resolve((), "wikipedia", path).resolve()
        stat = path.stat()
        key = ("path", str(path), stat.st_size, stat.st_mtime_ns, settings)
    else:
        key = ("passages", _passages_digest(passages), settings)
    with _SHARED_LOCK:
        search = _SHARED.get(key)
        if search is None:
            if path is not None:
                search = BM25Search.from_corpus(path, cache_dir=cache_dir, **kwargs)
            elif cache_dir is not None:
                search = BM25Search.from_passages(passages, cache_dir=cache_dir, **kwargs)
            else:
                search = BM25Search(passages, **kwargs)
            _SHARED[key] = search
    return search.with_top_k(top_k)
