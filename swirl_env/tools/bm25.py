"""BM25 index core: the tokeniser, the index, query scoring, array I/O.

The index is term-major: each term has two postings lists, ``doc_ids[indptr[i]:indptr[i + 1]]``
for ``i = 2t`` (its postings with the top-decile tf factors) and ``i = 2t + 1`` (the rest), docs
ascending (int32), each with a precomputed float32 BM25 weight as bm25s stores them, so a query only
sums weights. The idf is Lucene's, ``log(1 + (N - df + 0.5) / (df + 0.5))``. Queries are exact and
use MaxScore pruning (see :meth:`Index.top_k`); the split makes the long lists' weight bounds tight.
Lists that hold at least 1/32 of the documents also have a bitmap, for the kernel's lookups.

The build (:func:`swirl_env.tools.bm25_build.build_index`) lives in its own module; the kernel
(:mod:`swirl_env.tools.bm25_fast`), when built, runs the queries, and the numpy code here is the fallback
and the reference: it answers with the same documents in the same order.
"""
from __future__ import annotations

import collections
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from swirl_env.tools import bm25_fast

TOKEN_RE = re.compile(r"\w+")
"""A token is a maximal run of Unicode word characters (letters, digits, underscore)."""

_EN = """
a an and are as at be but by for if in into is it no not of on or such that the their then there these they this to
was will with which what who whom whose when where why how
"""
STOPWORDS = {"en": frozenset(_EN.split())}
"""Stopword lists by name. ``"en"``: Lucene's English set plus the question words, the best of the
lists measured on HotpotQA (recall@5 0.740, against 0.736 for Lucene's alone and 0.732 for NLTK's)."""


_MISSING = object()
_SLACK = 1e-5  # relative: float32 sums in another order may differ by a few ulps; never prune a tie
_SEED_POSTINGS, _SEED_DOCS = 4096, 64  # how much work goes into the first lower bound of the k-th score
_PRUNE_ABOVE = 24_576  # postings; below, summing them all is faster (measured)
_ARRAYS = ("indptr", "doc_ids", "weights", "bounds", "bitmap_lists", "bitmaps", "ranks")
_BITMAP_SHARE = 32  # lists of at least 1/32 of the documents get a bitmap: 129 lists, 24 MB at 1M synthetic paragraphs


@lru_cache(maxsize=None)
def _stemmer(language: str):
    import Stemmer  # PyStemmer, C Snowball stemmers

    if language not in Stemmer.algorithms():
        raise ValueError(f"expected a PyStemmer language, one of {Stemmer.algorithms()}, actual {language!r}")
    return Stemmer.Stemmer(language, 0)  # its own cache thrashes on a corpus vocabulary; we memoise


@dataclass(frozen=True)
class Tokenizer:
    """Text to index terms: ``\\w+`` tokens, lowercased, stopwords dropped, Snowball-stemmed.

    Example:
        >>> Tokenizer()("Which Italian-American composers wrote operas?")
        ['italian', 'american', 'compos', 'wrote', 'opera']
        >>> Tokenizer(stopwords=None, stemmer=None)("Which operas?")
        ['which', 'operas']
    """

    lowercase: bool = True
    """Lowercase tokens (stopwords are matched case-insensitively either way)."""
    stopwords: str | None = "en"
    """Name of a list in :data:`STOPWORDS`, or None to keep every token."""
    stemmer: str | None = "english"
    """PyStemmer language, or None for no stemming."""
    _memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.stopwords is not None and self.stopwords not in STOPWORDS:
            raise ValueError(f"expected stopwords in {sorted(STOPWORDS)} or None, actual {self.stopwords!r}")
        if self.stemmer is not None:
            _stemmer(self.stemmer)

    def __call__(self, text: str) -> list[str]:
        tokens = TOKEN_RE.findall(text)
        memo = self._memo
        unseen = [t for t in dict.fromkeys(tokens) if t not in memo]
        new = dict(zip(unseen, self.normalize(unseen))) if unseen else {}
        if new:
            if len(memo) > 1_000_000:  # bound the memo on endless streams of new words
                memo.clear()
            memo.update(new)
        terms = []
        for token in tokens:
            term = new[token] if token in new else memo.get(token, _MISSING)
            if term is _MISSING:  # another thread cleared the memo meanwhile
                term = self.normalize([token])[0]
            if term is not None:
                terms.append(term)
        return terms

    def normalize(self, tokens: list[str]) -> list[str | None]:
        """Each ``\\w+`` token as its index term, or None for a stopword; one stemmer call for the batch."""
        stop = STOPWORDS[self.stopwords] if self.stopwords else frozenset()
        lower = [t.lower() for t in tokens]
        forms = [f for f, low in zip(lower if self.lowercase else tokens, lower) if low not in stop]
        if self.stemmer:
            forms = _stemmer(self.stemmer).stemWords(forms)
        kept = iter(forms)
        return [None if low in stop else next(kept) for low in lower]

    def fingerprint(self) -> str:
        """A digest of everything that decides the terms (for cache keys)."""
        import Stemmer

        spec = {
            "pattern": TOKEN_RE.pattern,
            "lowercase": self.lowercase,
            "stopwords": sorted(STOPWORDS[self.stopwords]) if self.stopwords else None,
            "stemmer": self.stemmer,
            "stemmer_version": Stemmer.version() if self.stemmer else None,
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Index:
    """Term-major BM25 postings with precomputed weights (see the module docstring)."""

    terms: list[str]
    """Term strings by id."""
    indptr: np.ndarray  # (2V + 1,) int64: list 2t holds term t's high-tf postings, list 2t + 1 the rest
    doc_ids: np.ndarray  # (nnz,) int32, ascending within each list
    weights: np.ndarray  # (nnz,) float32, all > 0
    bounds: np.ndarray  # (2V,) float32, the largest weight of each list (0 if empty): for pruning
    n_docs: int
    vocab: dict[str, int] = field(default_factory=dict, repr=False)
    """Term to id; derived from ``terms`` when left empty."""
    bitmap_lists: np.ndarray | None = None  # (B,) int64, ascending: the lists with a bitmap (see list_bitmaps)
    bitmaps: np.ndarray | None = None  # (B, ceil(n_docs / 64)) uint64: bit d of row i says doc d is in list bitmap_lists[i]
    ranks: np.ndarray | None = None  # (B, ceil(n_docs / 64)) int32: the row's postings before each 64-bit word
    """The three bitmap arrays are derived from the postings when left None."""

    def __post_init__(self) -> None:
        if not self.vocab and self.terms:
            self.vocab = dict(zip(self.terms, range(len(self.terms))))
        if self.bitmap_lists is None:
            self.bitmap_lists, self.bitmaps, self.ranks = list_bitmaps(self.indptr, self.doc_ids, self.n_docs)

    def term_ids(self, terms: Iterable[str]) -> list[int]:
        """Ids of the terms that occur in the corpus (others cannot match and are dropped)."""
        get = self.vocab.get
        return [i for i in map(get, terms) if i is not None]

    def nbytes(self) -> int:
        """Bytes held by the arrays (the vocabulary dict not counted)."""
        return sum(getattr(self, name).nbytes for name in _ARRAYS)

    def top_k(self, term_ids: list[int], k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best documents for a bag of term ids (a repeated term counts again), best first.

        Returns ``(doc_ids, scores)``: only documents with at least one term; ties go to the lower id.
        Exact, with MaxScore pruning: the full scores of a few documents of the rarest terms give a
        lower bound on the k-th best score; the commonest terms whose weight bounds add up to less
        than it cannot bring a new document into the top k, so their long postings are only looked up
        for the candidates that the other terms found.
        """
        if bm25_fast.AVAILABLE and (found := bm25_fast.top_k(self, term_ids, k)) is not None:
            return found  # the compiled kernel: the same documents, in the same order
        lists = self._query_postings(term_ids)  # by decreasing weight bound
        if not lists:
            return np.zeros(0, np.int32), np.zeros(0, np.float32)
        if sum(len(docs) for docs, _, _ in lists) <= _PRUNE_ABOVE:  # pruning would cost more than it saves
            return _best(*_sum_postings(lists), k)
        floor = self._score_floor(lists, k) * (1 - _SLACK)
        cut, optional = len(lists), 0.0
        while cut > 1 and optional + lists[cut - 1][2] < floor:
            cut -= 1
            optional += lists[cut][2]
        docs, scores = _sum_postings(lists[:cut])
        for postings, weights, bound in lists[cut:]:
            if len(scores) > k:  # partial scores are lower bounds, so the k-th best can raise the floor
                floor = max(floor, _kth_largest_bound(scores, k) * (1 - _SLACK))
            keep = (scores >= floor - optional).nonzero()[0]  # the others end below k documents
            docs, scores = docs[keep], scores[keep]
            scores += _lookup(docs, postings, weights)
            optional -= bound
        return _best(docs, scores, k)

    def _query_postings(self, term_ids: list[int]) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """``(docs, weights, bound)`` per distinct term, weights times the term's count, by decreasing bound."""
        lists = []
        for t, m in sorted(collections.Counter(term_ids).items()):
            for i in (2 * t, 2 * t + 1):
                lo, hi = self.indptr[i], self.indptr[i + 1]
                if hi > lo:
                    weights = self.weights[lo:hi] if m == 1 else self.weights[lo:hi] * np.float32(m)
                    lists.append((self.doc_ids[lo:hi], weights, float(self.bounds[i]) * m))
        return sorted(lists, key=lambda lst: -lst[2])

    def _score_floor(self, lists: list, k: int) -> float:
        """A lower bound on the k-th best score: the k-th best full score among a few likely documents."""
        seed, size = 1, len(lists[0][0])
        while seed < len(lists) and size + len(lists[seed][0]) <= _SEED_POSTINGS:
            size += len(lists[seed][0])
            seed += 1
        docs, scores = _sum_postings(lists[:seed])
        if len(docs) > _SEED_DOCS:  # keep the best partial scores
            top = np.argpartition(scores, len(docs) - _SEED_DOCS)[len(docs) - _SEED_DOCS :]
            top.sort()
            docs, scores = docs[top], scores[top]
        for postings, weights, _ in lists[seed:]:
            scores = scores + _lookup(docs, postings, weights)
        return float(np.partition(scores, len(scores) - k)[len(scores) - k]) if len(scores) >= k else 0.0

    def save(self, folder: Path) -> None:
        """Write the arrays as ``.npy`` files and the terms as lines of ``terms.txt`` into ``folder``."""
        for name in _ARRAYS:
            np.save(folder / f"{name}.npy", getattr(self, name))
        (folder / "terms.txt").write_bytes("\n".join(self.terms).encode("utf-8", "surrogatepass"))
        (folder / "index.json").write_text(json.dumps({"n_docs": self.n_docs, "n_terms": len(self.terms)}))

    @classmethod
    def load(cls, folder: Path, mmap: bool = True) -> Index:
        """Read what :meth:`save` wrote (arrays memory-mapped); ValueError if the files disagree."""
        shape = json.loads((folder / "index.json").read_text())
        # a plain view of the memmap: np.memmap's Python-level slicing costs more than a small query
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r" if mmap else None).view(np.ndarray) for name in _ARRAYS}
        text = (folder / "terms.txt").read_bytes().decode("utf-8", "surrogatepass")
        terms = text.split("\n") if text else []
        n_terms, nnz = len(terms), len(arrays["doc_ids"])
        if not (2 * n_terms == 2 * shape["n_terms"] == len(arrays["bounds"]) == len(arrays["indptr"]) - 1) or not (
            nnz == len(arrays["weights"]) == arrays["indptr"][-1]
        ):
            raise ValueError(f"inconsistent index files in {folder}: {shape}, {n_terms} terms, {nnz} postings")
        lists, rows = arrays["bitmap_lists"], (len(arrays["bitmap_lists"]), (shape["n_docs"] + 63) // 64)
        if arrays["bitmaps"].shape != rows or arrays["ranks"].shape != rows or np.any(lists >= 2 * n_terms) or (
            np.any(np.diff(lists) <= 0)
        ):
            raise ValueError(f"inconsistent bitmap files in {folder}: {len(lists)} lists, expected rows of {rows[1]} words")
        return cls(terms, n_docs=shape["n_docs"], **arrays)


def list_bitmaps(indptr: np.ndarray, doc_ids: np.ndarray, n_docs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(bitmap_lists, bitmaps, ranks)`` of :class:`Index`: a bitmap of each list that holds at least
    1/``_BITMAP_SHARE`` of the documents (no bigger than its doc ids), and the postings before each 64-bit
    word, so the kernel finds a document's posting there in O(1) rather than by a search.
    """
    lists = np.flatnonzero(np.diff(indptr) * _BITMAP_SHARE >= max(n_docs, 1)).astype(np.int64)
    words = (n_docs + 63) // 64
    bitmaps, ranks = np.zeros((len(lists), words), np.uint64), np.zeros((len(lists), words), np.int32)
    for row, lst in enumerate(lists.tolist()):
        docs = doc_ids[indptr[lst] : indptr[lst + 1]].astype(np.int64)
        word, first = docs >> 6, _run_starts(docs >> 6)
        bits = np.uint64(1) << (docs & 63).astype(np.uint64)
        bitmaps[row, word[first]] = np.add.reduceat(bits, first)  # distinct bits: + is |
        ranks[row, 1:] = np.cumsum(np.bincount(word, minlength=words))[:-1]
    return lists, bitmaps, ranks


def _best(docs: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k highest scores, ties to the lower doc id, best first."""
    if len(docs) > k:
        threshold = _kth_largest_bound(scores, k)
        keep = (scores >= threshold).nonzero()[0]  # every document tied at the threshold competes
        docs, scores = docs[keep], scores[keep]
    order = np.lexsort((docs, -scores))[:k]
    return docs[order], scores[order]


def _kth_largest_bound(scores: np.ndarray, k: int) -> float:
    """A value <= the k-th largest score, usually close: the k-th largest of the maxima of 64-wide blocks."""
    n = len(scores) // 64 * 64
    if n < 64 * k:
        return float(np.partition(scores, len(scores) - k)[len(scores) - k])
    block_max = scores[:n].reshape(-1, 64).max(axis=1)
    if n < len(scores):
        block_max = np.append(block_max, scores[n:].max())
    return float(np.partition(block_max, len(block_max) - k)[len(block_max) - k])


def _sum_postings(lists: list) -> tuple[np.ndarray, np.ndarray]:
    """Docs (ascending, unique) and summed weights of the union of some postings lists.

    A sort of packed ``doc << 32 | weight bits`` keys groups each document's weights (float32 bits
    of positive numbers sort like the numbers); a scatter into a dense array would cost more.
    """
    if len(lists) == 1:
        return lists[0][0], lists[0][1].astype(np.float32)
    docs = np.concatenate([d for d, _, _ in lists]).astype(np.int64)
    bits = np.concatenate([w for _, w, _ in lists]).view(np.int32)
    docs <<= 32
    docs |= bits
    docs.sort()
    first = _run_starts(docs >> 32)
    weights = docs.astype(np.int32).view(np.float32)  # low 32 bits
    return (docs[first] >> 32).astype(np.int32), np.add.reduceat(weights, first)


def _lookup(docs: np.ndarray, postings: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weight of each of ``docs`` (ascending) in one postings list, 0 where absent.

    Binary search from the shorter side: each doc in the postings, or each posting in the docs.
    """
    out = np.zeros(len(docs), np.float32)
    if not len(docs) or not len(postings):
        return out
    if len(docs) <= len(postings):
        at = np.searchsorted(postings, docs)
        at[at == len(postings)] = 0
        hit = (postings[at] == docs).nonzero()[0]
        out[hit] = weights[at[hit]]
    else:
        at = np.searchsorted(docs, postings)
        at[at == len(docs)] = 0
        hit = (docs[at] == postings).nonzero()[0]
        out[at[hit]] = weights[hit]
    return out


def _run_starts(sorted_values: np.ndarray) -> np.ndarray:
    """Index of the first element of each run of equal values."""
    if not len(sorted_values):
        return np.zeros(0, np.int64)
    return np.concatenate(([True], sorted_values[1:] != sorted_values[:-1])).nonzero()[0]
