"""The optional compiled kernels of :mod:`swirl_env.tools.bm25` (index build and top-k), and their loader.

``pip install -e .`` compiles ``_bm25_kernel.c`` when a C compiler is there; without one the package
installs all the same and bm25.py keeps its numpy code, which builds the same index and answers with
the same documents in the same order (scores may differ by a few float32 ulps: the sums run in another
order). At a million paragraphs on 2 cores the kernel builds the index in 11 s (16 s of CPU) and
answers a median query in 0.24 ms (``benchmarks/results/search.md``), and answers the first query in
a new process at once (no JIT). Set ``SWIRL_BM25_KERNEL=0`` to use the numpy code anyway.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

KERNEL_VERSION = 2
"""The ``VERSION`` of ``_bm25_kernel.c`` this module calls; a module built from older sources is not used."""

try:  # built by setuptools as an optional extension; absent without a compiler
    from swirl_env.tools import _bm25_kernel
except ImportError:  # pragma: no cover - depends on the install
    _bm25_kernel = None

if _bm25_kernel is not None and getattr(_bm25_kernel, "VERSION", None) != KERNEL_VERSION:  # pragma: no cover
    warnings.warn(
        f"swirl_env.tools._bm25_kernel is a stale build (version {getattr(_bm25_kernel, 'VERSION', 1)}, expected "
        f"{KERNEL_VERSION}); BM25 runs on numpy, slower. Rebuild it: pip install -e . --no-deps --no-build-isolation"
    )
    _bm25_kernel = None

AVAILABLE = _bm25_kernel is not None and os.environ.get("SWIRL_BM25_KERNEL", "1") != "0"
"""Whether bm25.py runs the compiled kernel."""

_DTYPES = {"indptr": np.int64, "doc_ids": np.int32, "weights": np.float32, "bounds": np.float32,
           "bitmap_lists": np.int64, "bitmaps": np.uint64, "ranks": np.int32}  # fmt: skip


def top_k(index, term_ids: list[int], k: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The kernel's answer for :meth:`Index.top_k`, or None if the index arrays do not suit it.

    Example:
        >>> from swirl_env.tools.bm25 import Tokenizer
        >>> from swirl_env.tools.bm25_build import build_index
        >>> index = build_index(["red apples", "green apples and red pears"], Tokenizer())
        >>> docs, scores = index.top_k(index.term_ids(["appl", "pear"]), 2)
        >>> docs.tolist()
        [1, 0]
    """
    if not index.n_docs or not _suits(index):
        return None
    out_docs, out_scores = np.empty(k, np.int32), np.empty(k, np.float32)
    n = _bm25_kernel.top_k(index.indptr, index.doc_ids, index.weights, index.bounds, index.bitmap_lists, index.bitmaps,
                           index.ranks, index.n_docs, term_ids, k, out_docs, out_scores)  # fmt: skip
    return out_docs[:n], out_scores[:n]


def _suits(index) -> bool:
    """The kernel reads the arrays as C-contiguous with the dtypes of :class:`Index`."""
    return all(
        getattr(index, name).dtype == dtype and getattr(index, name).flags.c_contiguous for name, dtype in _DTYPES.items()
    )


def split_pieces(raw: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(keys, spans, piece_ids, doc_starts)`` of a chunk, as :func:`bm25_build._split_numpy` computes them."""
    keys, spans, piece_ids, doc_starts = _bm25_kernel.split_pieces(raw)
    return (np.frombuffer(keys, np.uint64), np.frombuffer(spans, np.int64).reshape(-1, 2),
            np.frombuffer(piece_ids, np.int32), np.frombuffer(doc_starts, np.int64))  # fmt: skip


def probe(table: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """The slots of ``keys`` in an open-addressing table, inserting new keys (see :func:`bm25_build._probe`)."""
    (slots,) = _bm25_kernel.probe(table, keys)
    return np.frombuffer(slots, np.int64)


class TermCounter:
    """Counts each document's terms with the kernel, as :func:`bm25_build._count_numpy` does; holds its scratch array.

    Call it on the chunks in document order: its scratch remembers, per term, the last document that held it.
    """

    def __init__(self) -> None:
        self._seen = np.zeros(0, np.int32)

    def __call__(self, codes: np.ndarray, piece_ids: np.ndarray, doc_starts: np.ndarray, multi_terms: np.ndarray,
                 multi_start: np.ndarray, n_terms: int, first_doc: int) -> tuple[np.ndarray, ...]:  # fmt: skip
        """``(terms, tfs, doc_ptr, doc_len)`` of a chunk whose pieces have the term ``codes`` (see bm25_build.CorpusTokens)."""
        if len(self._seen) < 2 * n_terms:  # -1: no document yet
            self._seen = np.concatenate([self._seen, np.full(max(2 * n_terms, len(self._seen)), -1, np.int32)])
        out = _bm25_kernel.count_terms(codes, piece_ids, doc_starts, multi_terms, multi_start, self._seen, first_doc)
        return tuple(np.frombuffer(a, dtype) for a, dtype in zip(out, (np.int32, np.int32, np.int64, np.int64)))


def list_counts(chunk, saturation, cut: np.float32, counts: np.ndarray) -> None:
    """Add the number of postings the chunk puts in each list to ``counts`` (see bm25_build.CorpusTokens.postings)."""
    _bm25_kernel.list_counts(chunk.terms, chunk.tfs, chunk.doc_ptr, chunk.first_doc, saturation.norm,
                             float(saturation.k1p1), float(cut), saturation.tf_cap, counts)  # fmt: skip


def scatter(chunk, saturation, cut: np.float32, cursor: np.ndarray, idf: np.ndarray, indptr: np.ndarray,
            doc_ids: np.ndarray, weights: np.ndarray, bounds: np.ndarray, scratch: np.ndarray) -> np.ndarray:  # fmt: skip
    """Write the chunk's postings and weights at each list's ``cursor`` (advanced); raise ``bounds`` to their maxima.

    Returns the scratch buffer (``scratch`` if big enough), to pass again with the next chunk.
    """
    if len(scratch) < _bm25_kernel.SCATTER_BYTES * len(chunk.terms):
        scratch = np.empty(_bm25_kernel.SCATTER_BYTES * len(chunk.terms), np.uint8)
    _bm25_kernel.scatter(chunk.terms, chunk.tfs, chunk.doc_ptr, chunk.first_doc, saturation.norm, float(saturation.k1p1),
                         float(cut), saturation.tf_cap, cursor, idf, indptr, doc_ids, weights, bounds, scratch)  # fmt: skip
    return scratch
