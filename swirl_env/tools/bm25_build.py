"""The BM25 index build: a vectorised whole-corpus tokenisation and posting layout.

The build never tokenises document by document in Python. Each chunk of documents is joined into
one UTF-8 buffer, split into runs of word bytes ("pieces"), each keyed by its bytes (pieces longer
than 8 bytes by a 64-bit hash) and numbered in order of first occurrence through a hash table. Only
distinct pieces new to the vocabulary are decoded and normalised (regex split, lowercase, stopwords,
stemming) by the same :class:`Tokenizer` that serves queries, so the index agrees with
``Tokenizer()(text)``. Each document's (term, tf) pairs are counted, and at the end laid out per list.
Splitting runs on worker threads ahead of the vocabulary lookups, counting on another behind them.

When the optional C kernel is built (:mod:`swirl_env.tools.bm25_fast`), the splitting, counting and
layout run there; the numpy code below is the fallback and the reference: it builds the same index.
"""

from __future__ import annotations

import collections
import itertools
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from swirl_env.tools import bm25_fast
from swirl_env.tools.bm25 import TOKEN_RE, Index, Tokenizer, _run_starts

_SCATTER_PAIRS = 1 << 22  # postings the kernel sorts by term at a time before writing them to their lists
_CUT_SAMPLE_DOCS = 10_000  # the tf factor that splits the lists is the 90th percentile over about this many documents
_WORD_BYTES = bytes(1 if c >= 0x80 or chr(c).isalnum() or c == 0x5F else 0 for c in range(256))
"""1 for bytes that can be part of a ``\\w+`` token: ASCII letters, digits, ``_`` and all non-ASCII bytes."""
_LOW_BYTES = np.array([(1 << 8 * n) - 1 for n in range(8)] + [2**64 - 1], dtype=np.uint64)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX = np.uint64(0xBF58476D1CE4E5B9)
_UNSEEN, _NONE = np.iinfo(np.int32).min, -1
"""Piece codes besides term ids: not normalised yet; no terms (stopwords). ``-2 - k``: k-th multi-term piece."""


def build_index(
    texts: Iterable[str], tokenizer: Tokenizer, *, k1: float = 1.5, b: float = 0.75, workers: int | None = None
) -> Index:
    """Tokenise ``texts`` (one per document) and build the BM25 index.

    Example:
        >>> index = build_index(["red apples", "green apples and red pears"], Tokenizer())
        >>> index.n_docs, sorted(index.terms)
        (2, ['appl', 'green', 'pear', 'red'])
    """
    if workers is None:
        workers = min(len(os.sched_getaffinity(0)), 4)
    with ThreadPoolExecutor(max(workers, 1)) as splitting, ThreadPoolExecutor(1) as counting:
        corpus = CorpusTokens(tokenizer, counting if workers > 0 else None)
        for chunk in _split_chunks(texts, splitting if workers > 0 else None, workers):
            corpus.add(chunk)
    doc_len = corpus.doc_lengths().astype(np.float32)
    avgdl = max(float(doc_len.mean()) if len(doc_len) else 0.0, 1e-9)
    norm = np.float32(k1) * (np.float32(1 - b) + np.float32(b / avgdl) * doc_len)
    saturation = Saturation(norm, np.float32(k1 + 1), _tf_cap(corpus.n_docs, len(corpus.terms)))
    indptr, doc_ids, weights, bounds = corpus.postings(saturation)
    return Index(corpus.terms, indptr, doc_ids, weights, bounds, corpus.n_docs, corpus.vocab)


@dataclass(frozen=True)
class Saturation:
    """BM25's tf factor of a document's term, ``tf * (k1 + 1) / (tf + norm[doc])`` in float32, tf capped."""

    norm: np.ndarray  # (n_docs,) float32: k1 * (1 - b + b * doc_len / avgdl)
    k1p1: np.float32
    """``k1 + 1``."""
    tf_cap: int
    """Larger term frequencies count as this one (BM25 has long saturated there)."""

    def __call__(self, tf: np.ndarray, doc: np.ndarray) -> np.ndarray:
        tf = np.minimum(tf, self.tf_cap).astype(np.float32)
        return tf * self.k1p1 / (tf + self.norm[doc])


def _tf_cap(n_docs: int, n_terms: int) -> int:
    """What packs in a 63-bit key beside a doc id and a list id (at least 16383 up to 16M documents and 16M terms)."""
    doc_bits, list_bits = max(n_docs - 1, 1).bit_length(), max(2 * n_terms - 1, 1).bit_length()
    tf_bits = 63 - doc_bits - list_bits
    if tf_bits < 8:
        raise ValueError(f"corpus too large to index: {n_docs} documents and {n_terms} terms")
    return min((1 << tf_bits) - 1, 2**31 - 1)


def _idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    """Lucene's idf of each term, float32."""
    return np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)


def _chunks(texts: Iterable[str], target_chars: int = 4 << 20) -> Iterator[list[str]]:
    """Batches of about ``target_chars`` characters: big enough for numpy, small enough for the caches."""
    texts, count = iter(texts), 1000
    while batch := list(itertools.islice(texts, count)):
        yield batch
        chars = sum(map(len, batch)) + 1
        count = max(1, min(int(count * target_chars / chars), 8 * count))  # documents vary little in length


def _split_chunks(texts: Iterable[str], pool: Executor | None, ahead: int) -> Iterator[ChunkPieces]:
    """``split_pieces`` over the chunks, in order, up to ``ahead`` of them read ahead on ``pool`` (the kernel
    and numpy release the GIL); on this thread if ``pool`` is None."""
    if pool is None:
        yield from map(split_pieces, _chunks(texts))
        return
    pending: collections.deque = collections.deque()
    for chunk in _chunks(texts):
        pending.append(pool.submit(split_pieces, chunk))
        if len(pending) > ahead:  # bounded read-ahead keeps memory flat
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


@dataclass
class ChunkPieces:
    """A chunk of documents split into pieces (runs of word bytes), deduplicated within the chunk.

    Pieces are numbered in order of first occurrence, so the terms get the same ids on either path.
    """

    raw: bytes
    """The chunk as UTF-8, to decode the pieces the vocabulary has not seen yet."""
    keys: np.ndarray  # (D,) uint64: the distinct pieces' keys (see _piece_keys)
    spans: np.ndarray  # (D, 2) int64: start and end in raw of the first occurrence of each distinct piece
    piece_ids: np.ndarray  # (T,) int32: the distinct piece of each token position, in text order
    doc_starts: np.ndarray  # (n_docs + 1,) int64: the first token position of each document


def split_pieces(texts: list[str]) -> ChunkPieces:
    """Split documents into pieces (with the kernel if built, else numpy); a pure function, safe on worker threads."""
    chunk = _split(_join(texts))
    if len(chunk.doc_starts) != len(texts) + 1:  # NUL separates documents, so none may hold one
        chunk = _split(_join([t.replace("\x00", " ") for t in texts]))
    return chunk


def _join(texts: list[str]) -> bytes:
    """The documents as one UTF-8 buffer, NUL-separated; padding lets the keys be read 8 bytes at a time anywhere."""
    return "\x00".join(texts).encode("utf-8", "surrogatepass") + bytes(8)


def _split(raw: bytes) -> ChunkPieces:
    if bm25_fast.AVAILABLE:
        return ChunkPieces(raw, *bm25_fast.split_pieces(raw))
    return _split_numpy(raw)


def _split_numpy(raw: bytes) -> ChunkPieces:
    """:class:`ChunkPieces` of a :func:`_join` buffer with numpy."""
    word = np.frombuffer(raw.translate(_WORD_BYTES), np.bool_)
    edges = (word[1:] != word[:-1]).nonzero()[0] + 1
    if word[0]:
        edges = np.concatenate(([0], edges))
    starts, ends = edges[0::2], edges[1::2]
    separators = (np.frombuffer(raw, np.uint8, len(raw) - 8) == 0).nonzero()[0]
    keys = _piece_keys(raw, starts, ends - starts)
    table = np.zeros(1 << max(10, int(1.5 * len(keys) + 1).bit_length()), np.uint64)
    slots = _probe(table, keys)
    first = np.full(len(table), len(slots))
    np.minimum.at(first, slots, np.arange(len(slots)))
    used = table.nonzero()[0]
    used = used[np.argsort(first[used])]  # by first occurrence
    local = np.empty(len(table), np.int32)
    local[used] = np.arange(len(used), dtype=np.int32)
    reps = first[used]
    doc_starts = np.concatenate(([0], np.searchsorted(starts, separators), [len(starts)]))
    return ChunkPieces(raw, table[used], np.stack([starts[reps], ends[reps]], 1), local[slots], doc_starts)


def _piece_keys(raw: bytes, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """A uint64 key per piece: its own bytes if at most 8 long (exact), else a 64-bit hash of its bytes."""
    words = np.ndarray((len(raw) - 7,), dtype="<u8", buffer=raw, strides=(1,))  # the 8 bytes from each offset
    keys = words[starts] & _LOW_BYTES[np.minimum(lengths, 8)]
    long_ = (lengths > 8).nonzero()[0]
    offset = 8
    while long_.size:
        h = keys[long_]
        more = words[starts[long_] + offset] & _LOW_BYTES[np.minimum(lengths[long_] - offset, 8)]
        keys[long_] = ((h ^ (h >> np.uint64(31))) * _MIX) ^ more | np.uint64(1 << 63)  # never 0: the free mark
        offset += 8
        long_ = long_[lengths[long_] > offset]
    return keys


def _probe(table: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Slots of ``keys`` in an open-addressing table (0 = free), inserting new keys; all keys probe in lock step.

    Equal keys walk the same path, so they end in one slot. The table must have more slots than distinct keys.
    """
    mask = len(table) - 1
    slot = ((keys * _GOLDEN) >> np.uint64(64 - mask.bit_length())).view(np.int64)
    current = table[slot]
    free = (current == 0).nonzero()[0]
    table[slot[free]] = keys[free]  # rivals for one free slot: one wins, the others walk on
    current[free] = table[slot[free]]
    todo = (current != keys).nonzero()[0]
    while todo.size:  # the few keys whose home slot holds another key
        slot[todo] = (slot[todo] + 1) & mask
        s, k = slot[todo], keys[todo]
        current = table[s]
        free = current == 0
        table[s[free]] = k[free]
        current[free] = table[s[free]]
        todo = todo[current != k]
    return slot


@dataclass
class ChunkCounts:
    """The distinct terms of each document of a chunk and their counts, document by document."""

    terms: np.ndarray  # (P,) int32: the pairs of document first_doc + d are [doc_ptr[d], doc_ptr[d + 1])
    tfs: np.ndarray  # (P,) int32: how often the document holds the term
    doc_ptr: np.ndarray  # (n + 1,) int64
    doc_len: np.ndarray  # (n,) int64: the document's number of terms
    first_doc: int


class CorpusTokens:
    """The (term, doc, term frequency) triples of a corpus, gathered one chunk of documents at a time.

    Args:
        tokenizer: turns pieces of text into index terms.
        pool: a one-thread executor to count the chunks' terms on, while the next chunk's new pieces
            are normalised (which holds the GIL); None to count at once.
    """

    def __init__(self, tokenizer: Tokenizer, pool: Executor | None = None) -> None:
        self.tokenizer = tokenizer
        self.terms: list[str] = []
        self.vocab: dict[str, int] = {}
        self.n_docs = 0
        self._pool = pool
        self._counted: list[ChunkCounts | Future] = []
        self._table = _PieceTable()
        self._multi_terms: list[int] = []  # term ids of pieces that split into several terms ("1911–1913")
        self._multi_start: list[int] = [0]
        self._counter = bm25_fast.TermCounter() if bm25_fast.AVAILABLE else _count_numpy

    def add(self, chunk: ChunkPieces) -> None:
        """Count the terms of one chunk."""
        slots = self._table.find(chunk.keys)
        codes = self._table.codes[slots]
        new = (codes == _UNSEEN).nonzero()[0]
        if new.size:
            codes[new] = self._codes(_decode(chunk.raw, chunk.spans[new]))
            self._table.codes[slots[new]] = codes[new]
        multi = np.asarray(self._multi_terms, np.int32), np.asarray(self._multi_start, np.int64)
        args = (codes, chunk.piece_ids, chunk.doc_starts, *multi, len(self.terms), self.n_docs)
        self._counted.append(self._pool.submit(self._count, *args) if self._pool else self._count(*args))
        self.n_docs += len(chunk.doc_starts) - 1

    def _count(self, *args) -> ChunkCounts:
        return ChunkCounts(*self._counter(*args), first_doc=args[-1])

    @property
    def chunks(self) -> list[ChunkCounts]:
        """The counts of the chunks added so far (waiting for those still being counted)."""
        self._counted = [c.result() if isinstance(c, Future) else c for c in self._counted]
        return self._counted

    def _codes(self, pieces: list[str]) -> list[int]:
        """The code of each new piece: an ASCII piece is exactly one token, others are re-split."""
        others = [i for i, piece in enumerate(pieces) if not piece.isascii()]
        if not others:
            return self._term_ids(self.tokenizer.normalize(pieces))
        simple = sorted(set(range(len(pieces))).difference(others))
        codes = [_NONE] * len(pieces)
        for i, code in zip(simple, self._term_ids(self.tokenizer.normalize([pieces[i] for i in simple]))):
            codes[i] = code
        # A non-ASCII piece may hold non-word characters ("1911–1913") or change length when lowercased.
        split = [TOKEN_RE.findall(pieces[i]) for i in others]
        normal = iter(self._term_ids(self.tokenizer.normalize([t for tokens in split for t in tokens])))
        for i, tokens in zip(others, split):
            ids = [i for i in (next(normal) for _ in tokens) if i != _NONE]
            codes[i] = ids[0] if len(ids) == 1 else self._multi_code(ids) if ids else _NONE
        return codes

    def _term_ids(self, terms: list[str | None]) -> list[int]:
        """Ids of terms (a new term gets the next id); ``_NONE`` for None."""
        vocab, ids = self.vocab, []
        for term in terms:
            i = _NONE if term is None else vocab.get(term)
            if i is None:
                i = vocab[term] = len(self.terms)
                self.terms.append(term)
            ids.append(i)
        return ids

    def _multi_code(self, ids: list[int]) -> int:
        k = len(self._multi_start) - 1  # this piece's index among multi-term pieces
        self._multi_terms += ids
        self._multi_start.append(len(self._multi_terms))
        return -2 - k

    def doc_lengths(self) -> np.ndarray:
        """Number of index terms of each document."""
        return np.concatenate([c.doc_len for c in self.chunks]) if self.n_docs else np.zeros(0, np.int64)

    def postings(self, saturation: Saturation) -> tuple[np.ndarray, ...]:
        """``(indptr, doc_ids, weights, bounds)`` of :class:`Index`, over two lists per term, docs ascending in each.

        List ``2t`` holds term t's postings whose tf factor is above the cut (about their top decile),
        list ``2t + 1`` the rest, so the long second list has a tight weight bound. Consumes the chunks.
        """
        chunks, self._counted = self.chunks, []
        cut = _cut(chunks, saturation, self.n_docs)
        layout = _kernel_postings if isinstance(self._counter, bm25_fast.TermCounter) else _sorted_postings
        return layout(chunks, saturation, cut, len(self.terms), self.n_docs)


def _cut(chunks: list[ChunkCounts], saturation: Saturation, n_docs: int) -> np.float32:
    """The tf factor that splits each term's postings: the 90th percentile (lower value) over some documents' pairs."""
    step, sample = max(1, n_docs // _CUT_SAMPLE_DOCS), []
    for chunk in chunks:
        docs = np.arange(-chunk.first_doc % step, len(chunk.doc_len), step)  # every step-th document of the corpus
        lo, count = chunk.doc_ptr[docs], np.diff(chunk.doc_ptr)[docs]
        sample.append(saturation(chunk.tfs[_ranges(lo, count)], chunk.first_doc + np.repeat(docs, count)))
    sample = np.concatenate(sample) if sample else np.zeros(0, np.float32)
    if not len(sample):
        return np.float32(0)
    rank = 9 * (len(sample) - 1) // 10
    return np.partition(sample, rank)[rank]


def _kernel_postings(chunks: list[ChunkCounts], saturation: Saturation, cut: np.float32, n_terms: int, n_docs: int):
    """:meth:`CorpusTokens.postings` with the kernel: count each list, then write the lists."""
    counts = np.zeros(2 * n_terms, np.int64)
    for chunk in chunks:
        bm25_fast.list_counts(chunk, saturation, cut, counts)
    indptr = np.concatenate(([0], np.cumsum(counts)))
    idf = _idf(counts[0::2] + counts[1::2], n_docs)
    doc_ids, weights = np.empty(indptr[-1], np.int32), np.empty(indptr[-1], np.float32)
    bounds, cursor, scratch = np.zeros(len(counts), np.float32), indptr[:-1].copy(), np.zeros(0, np.uint8)
    while chunks:  # a few chunks at a time, so each list is written in runs; freeing them as we go
        batch = [chunks.pop(0)]
        while chunks and sum(len(c.terms) for c in batch) < _SCATTER_PAIRS:
            batch.append(chunks.pop(0))
        scratch = bm25_fast.scatter(_merge(batch), saturation, cut, cursor, idf, indptr, doc_ids, weights, bounds, scratch)
    return indptr, doc_ids, weights, bounds


def _sorted_postings(chunks: list[ChunkCounts], saturation: Saturation, cut: np.float32, n_terms: int, n_docs: int):
    """:meth:`CorpusTokens.postings` with numpy: the (list, doc, tf) triples packed into int64 keys and sorted once."""
    doc_bits, tf_bits = max(n_docs - 1, 1).bit_length(), saturation.tf_cap.bit_length()
    packed = np.empty(sum(len(c.terms) for c in chunks), np.int64)
    at = 0
    while chunks:  # repack chunk by chunk, freeing each as we go
        chunk = chunks.pop(0)
        doc = chunk.first_doc + np.repeat(np.arange(len(chunk.doc_len), dtype=np.int64), np.diff(chunk.doc_ptr))
        tf = np.minimum(chunk.tfs, saturation.tf_cap).astype(np.int64)
        lst = chunk.terms.astype(np.int64) << 1 | (saturation(tf, doc) <= cut)
        packed[at : at + len(tf)] = lst << (doc_bits + tf_bits) | doc << tf_bits | tf
        at += len(tf)
    packed.sort()
    starts = np.searchsorted(packed, np.arange(2 * n_terms, dtype=np.int64) << (doc_bits + tf_bits))
    indptr = np.append(starts, len(packed))
    tfs = (packed & ((1 << tf_bits) - 1)).astype(np.int32)
    packed >>= tf_bits
    packed &= (1 << doc_bits) - 1
    doc_ids = packed.astype(np.int32)
    length = np.diff(indptr)
    weights = saturation(tfs, doc_ids)
    weights *= np.repeat(np.repeat(_idf(length[0::2] + length[1::2], n_docs), 2), length)
    bounds = np.zeros(len(length), np.float32)
    full = length.nonzero()[0]
    bounds[full] = np.maximum.reduceat(weights, indptr[full]) if len(full) else 0
    return indptr, doc_ids, weights, bounds


def _merge(chunks: list[ChunkCounts]) -> ChunkCounts:
    """Consecutive chunks as one."""
    if len(chunks) == 1:
        return chunks[0]
    offsets = np.cumsum([0] + [len(c.terms) for c in chunks])
    doc_ptr = np.concatenate([c.doc_ptr[:-1] + at for c, at in zip(chunks, offsets)] + [offsets[-1:]])
    return ChunkCounts(*(np.concatenate([getattr(c, name) for c in chunks]) for name in ("terms", "tfs")), doc_ptr,
                       np.concatenate([c.doc_len for c in chunks]), chunks[0].first_doc)  # fmt: skip


def _count_numpy(
    codes: np.ndarray, piece_ids: np.ndarray, doc_starts: np.ndarray, multi_terms: np.ndarray, multi_start: np.ndarray,
    n_terms: int, first_doc: int,
) -> tuple[np.ndarray, ...]:  # fmt: skip
    """``(terms, tfs, doc_ptr, doc_len)`` of :class:`ChunkCounts`: a sort of ``doc << 32 | term`` keys groups the pairs.

    ``n_terms`` and ``first_doc`` are there for the kernel's :class:`~bm25_fast.TermCounter`, which takes the same arguments.
    """
    n = len(doc_starts) - 1
    doc = np.repeat(np.arange(n, dtype=np.int64), np.diff(doc_starts))
    term, doc = _expand(codes[piece_ids], doc, multi_terms, multi_start)
    key = doc << 32 | term
    key.sort()
    first = _run_starts(key)
    terms = (key[first] & 0xFFFFFFFF).astype(np.int32)
    doc_ptr = np.searchsorted(key[first] >> 32, np.arange(n + 1))
    return terms, np.diff(first, append=len(key)).astype(np.int32), doc_ptr, np.bincount(doc, minlength=n)


def _expand(codes: np.ndarray, docs: np.ndarray, multi_terms: np.ndarray, multi_start: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-token codes to (term, doc) pairs; multi-term pieces are rare and expanded with np.repeat."""
    single = codes >= 0
    term, doc = codes[single], docs[single]
    multi = ((codes <= -2) & (codes != _UNSEEN)).nonzero()[0]
    if not multi.size:
        return term, doc
    k = -2 - codes[multi]
    start, count = multi_start[k], multi_start[k + 1] - multi_start[k]
    extra = multi_terms[_ranges(start, count)]
    return np.concatenate([term, extra]), np.concatenate([doc, np.repeat(docs[multi], count)])


def _ranges(start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """The concatenated ``arange(start[i], start[i] + count[i])``."""
    return np.arange(count.sum()) + np.repeat(start - (np.cumsum(count) - count), count)


def _decode(raw: bytes, spans: np.ndarray) -> list[str]:
    """The pieces of ``raw`` at ``spans`` (start, end) as strings: one gather, one decode."""
    lengths = spans[:, 1] - spans[:, 0]
    joined = np.zeros(int(lengths.sum()) + len(lengths), np.uint8)  # NUL after each piece; no piece holds one
    source = np.frombuffer(raw, np.uint8)[_ranges(spans[:, 0], lengths)]
    joined[_ranges(np.cumsum(lengths + 1) - lengths - 1, lengths)] = source
    return joined.tobytes().decode("utf-8", "surrogatepass").split("\x00")[:-1]


class _PieceTable:
    """The vocabulary's piece table: open addressing from piece key to slot, and a code per slot."""

    def __init__(self, bits: int = 16) -> None:
        self.keys = np.zeros(1 << bits, np.uint64)
        self.codes = np.full(1 << bits, _UNSEEN, np.int32)
        self.used = 0
        self._probe = bm25_fast.probe if bm25_fast.AVAILABLE else _probe  # one layout of the table for its life

    def find(self, keys: np.ndarray) -> np.ndarray:
        """The slot of each distinct key, inserting the keys not yet present."""
        size = len(self.keys)
        while 2 * (self.used + len(keys)) > size:  # load stays under 1/2 even if every key is new
            size *= 2
        if size > len(self.keys):
            occupied = self.keys.nonzero()[0]
            old_keys, old_codes = self.keys[occupied], self.codes[occupied]
            self.keys, self.codes = np.zeros(size, np.uint64), np.full(size, _UNSEEN, np.int32)
            self.codes[self._probe(self.keys, old_keys)] = old_codes
        slots = self._probe(self.keys, keys)
        self.used += int(np.count_nonzero(self.codes[slots] == _UNSEEN))
        return slots
