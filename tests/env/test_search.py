"""BM25 search: retrieval on real HotpotQA data, agreement with rank-bm25, the disk cache, errors, ties."""

from __future__ import annotations

import collections
import gzip
import itertools
import json

import numpy as np
import pytest

from swirl_env.data.corpus import Passage, load_corpus, passages_from_questions
from swirl_env.data.hotpotqa import read_hotpotqa
from swirl_env.data.paths import DataError
from swirl_env.tools import bm25, bm25_build, bm25_fast
from swirl_env.tools import search as search_module
from swirl_env.tools.base import Tool, ToolError
from swirl_env.tools.bm25 import Tokenizer
from swirl_env.tools.bm25_build import CorpusTokens, build_index, split_pieces
from swirl_env.tools.search import BM25Search, get_search
from tests.conftest import require_data

CORPUS = "wikipedia/hotpotqa_paragraphs.jsonl.gz"
QUESTIONS = "hotpotqa/hotpot_dev_distractor_subset.json.gz"


@pytest.fixture(scope="module")
def corpus_path():
    return require_data(CORPUS)


@pytest.fixture(scope="module")
def questions():
    return read_hotpotqa(require_data(QUESTIONS), limit=200)


@pytest.fixture(scope="module")
def search(corpus_path, tmp_path_factory):
    return BM25Search.from_corpus(corpus_path, cache_dir=tmp_path_factory.mktemp("bm25"))


@pytest.fixture(scope="module")
def subset(corpus_path, tmp_path_factory):
    """The first 1500 passages of the real corpus, as a JSONL file of their own (small: rebuilt per test)."""
    path = tmp_path_factory.mktemp("corpus") / "subset.jsonl"
    with gzip.open(corpus_path, "rt", encoding="utf-8") as f:
        path.write_text("".join(itertools.islice(f, 1500)), encoding="utf-8")
    return path


def test_supporting_titles_are_retrieved(search, questions):
    titles = [t for q in questions for t in q.supporting_titles]
    missed = [t for t in titles if t not in {hit.title for hit in search.search(t, k=5)}]
    # A few famous names occur in many other paragraphs (measured: 46 of 2534 dev titles miss).
    assert len(missed) <= 0.03 * len(titles), f"{len(missed)} of {len(titles)} titles not in the top 5: {missed}"


def test_question_recall_on_real_hotpotqa(search, questions):
    recall = np.mean(
        [len(set(q.supporting_titles) & {h.title for h in search.search(q.question)}) / 2 for q in questions]
    )
    assert recall > 0.65, f"recall@5 of gold paragraphs {recall:.3f}; measured 0.74 on all 1267 questions"


def test_backends_agree_on_real_questions(subset, questions):
    passages = load_corpus(subset)
    ours, reference = BM25Search(passages), BM25Search(passages, backend="rank_bm25")
    for q in questions[:60]:
        a, b = ours.search(q.question), reference.search(q.question)
        assert [h.doc_id for h in a] == [h.doc_id for h in b], q.question
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], rtol=1e-5)


def test_backends_agree_on_awkward_text():
    passages = [
        Passage("Straße", "Die Straße 1911–1913 in İstanbul, ＡＢＣ and naïve café."),
        Passage("NUL\x00 byte", "odd\x00text with a NUL and a lone surrogate \ud800 here; CAFÉ Café"),
        Passage("Long", "supercalifragilisticexpialidocious " * 3 + "antidisestablishmentarianism x_y 42"),
        Passage("", ""),
        Passage("Repeats", "café café cafe the the the"),
    ]
    ours, reference = BM25Search(passages), BM25Search(passages, backend="rank_bm25")
    for query in ["straße 1913", "istanbul İstanbul", "café", "ＡＢＣ", "nul byte odd", "supercalifragilisticexpialidocious", "x_y 42", "1911"]:
        a, b = ours.search(query), reference.search(query)
        assert [h.doc_id for h in a] == [h.doc_id for h in b], query
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], rtol=1e-5)


@pytest.fixture(params=["kernel", "numpy"])
def build_path(request, monkeypatch):
    """Run the test on the compiled kernel and on the numpy code."""
    if request.param == "kernel" and bm25_fast._bm25_kernel is None:
        pytest.skip("the compiled BM25 kernel is not built (no C compiler at install?): run `pip install -e .`")
    monkeypatch.setattr(bm25_fast, "AVAILABLE", request.param == "kernel")
    return request.param


def test_index_holds_exactly_the_tokenizer_terms(subset, build_path):
    """The vectorised build must agree with ``Tokenizer()(text)`` document by document, counts included."""
    passages = load_corpus(subset)[:400]
    texts = [f"{p.title}\n{p.text}" for p in passages] + AWKWARD
    corpus = CorpusTokens(Tokenizer())
    corpus.add(split_pieces(texts))
    (chunk,) = corpus.chunks
    for d in [*range(0, 400, 7), *range(400, len(texts))]:
        lo, hi = chunk.doc_ptr[d], chunk.doc_ptr[d + 1]
        got = {corpus.terms[t]: int(tf) for t, tf in zip(chunk.terms[lo:hi], chunk.tfs[lo:hi])}
        expected = collections.Counter(Tokenizer()(texts[d]))
        assert got == expected and chunk.doc_len[d] == expected.total(), texts[d][:60]


AWKWARD = [
    "Die Straße 1911–1913 in İstanbul, ＡＢＣ and naïve café.",
    "odd\x00text with a NUL and a lone surrogate \ud800 here; CAFÉ Café",
    "",
    "the of which",
    "supercalifragilisticexpialidocious " * 3 + "antidisestablishmentarianism x_y 42 eightchr ninechars sixteen_chars_xx",
    "café café cafe the the the 1911–1913 1911–1913 ",
]
"""Texts that exercise the tokeniser's corners: non-ASCII, NUL, pieces of 8, 9, 16 and 17+ bytes, multi-term pieces."""


@pytest.mark.skipif(bm25_fast._bm25_kernel is None, reason="the compiled BM25 kernel is not built: run `pip install -e .`")
def test_kernel_and_numpy_split_chunks_alike(subset, monkeypatch):
    texts = [f"{p.title}\n{p.text}" for p in load_corpus(subset)[:300]] + AWKWARD
    pieces = {}
    for on in (True, False):
        monkeypatch.setattr(bm25_fast, "AVAILABLE", on)
        pieces[on] = split_pieces(texts)
    for name in ("keys", "spans", "piece_ids", "doc_starts"):
        kernel, numpy_ = getattr(pieces[True], name), getattr(pieces[False], name)
        assert kernel.dtype == numpy_.dtype and np.array_equal(kernel, numpy_), name
    assert len(pieces[True].doc_starts) == len(texts) + 1


@pytest.mark.skipif(bm25_fast._bm25_kernel is None, reason="the compiled BM25 kernel is not built: run `pip install -e .`")
def test_kernel_and_numpy_build_identical_indexes(subset, monkeypatch):
    """Over many small chunks, so the term ids and documents carry across chunks."""
    texts = [f"{p.title}\n{p.text}" for p in load_corpus(subset)] + AWKWARD * 3
    chunks = bm25_build._chunks
    monkeypatch.setattr(bm25_build, "_chunks", lambda texts: chunks(texts, target_chars=50_000))
    indexes = []
    for on in (True, False):
        monkeypatch.setattr(bm25_fast, "AVAILABLE", on)
        indexes.append(build_index(texts, Tokenizer(), workers=2))
    kernel, numpy_ = indexes
    assert kernel.terms == numpy_.terms and kernel.n_docs == numpy_.n_docs == len(texts)
    for name in bm25._ARRAYS:
        a, b = getattr(kernel, name), getattr(numpy_, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert np.count_nonzero(np.diff(kernel.indptr)[1::2]), "some terms have a second list"


@pytest.mark.parametrize("prune_above", [0, None])
def test_pruned_top_k_equals_brute_force(search, questions, monkeypatch, prune_above):
    if prune_above is not None:  # the small real corpus rarely reaches the pruning threshold: force it
        monkeypatch.setattr(bm25, "_PRUNE_ABOVE", prune_above)
        monkeypatch.setattr(bm25, "_SEED_POSTINGS", 16)
        monkeypatch.setattr(bm25_fast, "AVAILABLE", False)  # the numpy path; None runs the kernel if built
    index = search._engine
    for q in questions[:40]:
        ids = index.term_ids(search.tokenizer(q.question + " " + q.answer))
        scores = np.zeros(index.n_docs, np.float64)
        for t in ids:
            for i in (2 * t, 2 * t + 1):
                lo, hi = index.indptr[i], index.indptr[i + 1]
                np.add.at(scores, index.doc_ids[lo:hi], index.weights[lo:hi])
        for k in (1, 5, 30):
            docs, top = index.top_k(ids, k)
            expected = np.lexsort((np.arange(index.n_docs), -scores))[: min(k, np.count_nonzero(scores))]
            np.testing.assert_allclose(top, scores[expected], rtol=1e-5)
            assert set(docs[top > top[-1] * (1 + 1e-5)]) <= set(expected), q.question  # ties may swap


def _kernel_and_numpy(index, ids, k, monkeypatch):
    monkeypatch.setattr(bm25_fast, "AVAILABLE", True)
    kernel = index.top_k(ids, k)
    monkeypatch.setattr(bm25_fast, "AVAILABLE", False)
    return kernel, index.top_k(ids, k)


def _assert_same(kernel, numpy_, what):
    assert kernel[0].dtype == numpy_[0].dtype and kernel[0].tolist() == numpy_[0].tolist(), what
    np.testing.assert_allclose(kernel[1], numpy_[1], rtol=1e-6, atol=0, err_msg=str(what))


@pytest.fixture
def kernel():
    if bm25_fast._bm25_kernel is None:
        pytest.skip("the compiled BM25 kernel is not built (no C compiler at install?): run `pip install -e .`")


def test_kernel_and_numpy_agree_on_real_questions(search, questions, kernel, monkeypatch):
    index = search._engine
    for q in questions:
        ids = index.term_ids(search.tokenizer(q.question + " " + q.answer))
        for k in (1, 5, 30):
            _assert_same(*_kernel_and_numpy(index, ids + ids[:2], k, monkeypatch), (q.question, k))


@pytest.mark.parametrize("vocabulary", [12, 3000])
def test_kernel_and_numpy_agree_on_random_data(vocabulary, kernel, monkeypatch):
    """A tiny vocabulary makes many exact ties; a large one long and short lists, so pruning starts."""
    rng = np.random.default_rng(vocabulary)
    words = [f"w{i}x" for i in range(vocabulary)]
    p = 1 / np.arange(1, vocabulary + 1)
    texts = [" ".join(rng.choice(words, rng.integers(1, 40), p=p / p.sum())) for _ in range(4000)]
    index = build_index(texts, Tokenizer(stemmer=None))
    for _ in range(300):
        ids = index.term_ids(rng.choice(words, rng.integers(1, 12)).tolist())
        for k in (1, 3, 10, 100):
            _assert_same(*_kernel_and_numpy(index, ids, k, monkeypatch), (ids, k))


def test_kernel_and_numpy_agree_on_long_random_queries(search, kernel, monkeypatch):
    """Long bags of common and rare terms: the slow tail, where pruning and the bitmap lookups matter."""
    index, rng = search._engine, np.random.default_rng(7)
    df = np.diff(index.indptr)[0::2] + np.diff(index.indptr)[1::2]
    common, rare = np.argsort(-df)[:300], np.flatnonzero((df > 0) & (df < 50))
    for _ in range(150):
        ids = [*rng.choice(common, rng.integers(2, 15)), *rng.choice(rare, rng.integers(0, 8))]
        for k in (1, 5, 40):
            _assert_same(*_kernel_and_numpy(index, [int(t) for t in ids], k, monkeypatch), (ids, k))


def test_kernel_and_numpy_agree_across_many_windows(kernel, monkeypatch):
    """A Zipfian corpus of 60k documents: the kernel scores 4096 documents at a time, with bitmaps for long lists."""
    rng = np.random.default_rng(3)
    words = np.array([f"w{i}x" for i in range(20_000)])
    p = 1 / np.arange(1, len(words) + 1)
    draws = rng.choice(len(words), (60_000, 12), p=p / p.sum())
    index = build_index([" ".join(words[row]) for row in draws], Tokenizer(stemmer=None))
    assert len(index.bitmap_lists) > 10 and index.n_docs > 10 * 4096
    for _ in range(60):
        ids = index.term_ids(words[rng.choice(len(words), rng.integers(1, 14), p=p / p.sum())].tolist())
        for k in (1, 5, 20):
            _assert_same(*_kernel_and_numpy(index, ids, k, monkeypatch), (ids, k))


def test_bitmaps_hold_the_long_lists(search):
    index = search._engine
    assert len(index.bitmap_lists), "the real corpus has lists long enough for a bitmap"
    for row, lst in enumerate(index.bitmap_lists.tolist()):
        docs = index.doc_ids[index.indptr[lst] : index.indptr[lst + 1]]
        assert len(docs) * bm25._BITMAP_SHARE >= index.n_docs
        words = index.bitmaps[row]
        assert np.all(words[docs >> 6] >> (docs & 63).astype(np.uint64) & np.uint64(1))
        assert sum(int(word).bit_count() for word in words) == len(docs)
        np.testing.assert_array_equal(index.ranks[row], np.searchsorted(docs, np.arange(0, index.n_docs, 64)))


def test_kernel_survives_damaged_bitmaps(kernel, monkeypatch):
    """A cache whose bitmaps were overwritten gives wrong answers, never a read out of bounds."""
    monkeypatch.setattr(bm25_fast, "AVAILABLE", True)
    index = build_index([f"common w{i}" for i in range(200)] + ["rare common"] * 3, Tokenizer(stemmer=None))
    index.bitmaps = np.full_like(index.bitmaps, np.iinfo(np.uint64).max)
    index.ranks = np.full_like(index.ranks, 10**7)
    for k in (1, 2, 5):  # small k: a floor from the rare terms' documents leaves "common" to bitmap lookups
        docs, _ = index.top_k(index.term_ids(["rare", "common", "w7"]), k)
        assert len(docs) <= k and np.all((docs >= 0) & (docs < index.n_docs))


def test_kernel_rejects_a_damaged_index(kernel, monkeypatch):
    monkeypatch.setattr(bm25_fast, "AVAILABLE", True)
    index = build_index(["red apples", "green apples and red pears"], Tokenizer())
    index.doc_ids = index.doc_ids.copy()
    index.doc_ids[0] = 7  # past the last document
    with pytest.raises(ValueError, match="doc id is out of range"):
        index.top_k(index.term_ids(["appl", "red", "green", "pear"]), 2)


def test_cache_is_reused_and_gives_identical_results(subset, tmp_path, questions):
    first = BM25Search.from_corpus(subset, cache_dir=tmp_path)
    second = BM25Search.from_corpus(subset, cache_dir=tmp_path)
    assert not first.loaded_from_cache and second.loaded_from_cache
    assert len(_folders(tmp_path)) == 1, "one cache folder, no temporary leftovers"
    assert len(second) == len(first) == 1500
    for q in questions[:30]:
        assert first.search(q.question) == second.search(q.question)
    assert second.passages[3] == load_corpus(subset)[3]


def test_a_cache_of_another_format_is_rebuilt(subset, tmp_path, monkeypatch):
    monkeypatch.setattr(search_module, "FORMAT_VERSION", search_module.FORMAT_VERSION - 1)
    BM25Search.from_corpus(subset, cache_dir=tmp_path)
    monkeypatch.undo()
    assert not BM25Search.from_corpus(subset, cache_dir=tmp_path).loaded_from_cache
    assert BM25Search.from_corpus(subset, cache_dir=tmp_path).loaded_from_cache


def test_an_edited_corpus_file_is_reindexed(subset, tmp_path):
    path = tmp_path / "corpus.jsonl"
    lines = subset.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:100]), encoding="utf-8")
    assert len(BM25Search.from_corpus(path, cache_dir=tmp_path / "cache")) == 100
    path.write_text("".join(lines[:120]), encoding="utf-8")
    again = BM25Search.from_corpus(path, cache_dir=tmp_path / "cache")
    assert not again.loaded_from_cache and len(again) == 120


def test_cache_key_covers_the_settings(subset, tmp_path):
    BM25Search.from_corpus(subset, cache_dir=tmp_path)
    other = BM25Search.from_corpus(subset, cache_dir=tmp_path, k1=1.2)
    unstemmed = BM25Search.from_corpus(subset, cache_dir=tmp_path, tokenizer=Tokenizer(stemmer=None))
    assert not other.loaded_from_cache and not unstemmed.loaded_from_cache
    assert len(_folders(tmp_path)) == 3


@pytest.mark.parametrize("damage", ["truncate", "delete", "garbage_meta"])
def test_broken_cache_is_ignored_and_rebuilt(subset, tmp_path, questions, damage):
    built = BM25Search.from_corpus(subset, cache_dir=tmp_path)
    (folder,) = _folders(tmp_path)
    if damage == "truncate":
        data = (folder / "doc_ids.npy").read_bytes()
        (folder / "doc_ids.npy").write_bytes(data[: len(data) // 2])
    elif damage == "delete":
        (folder / "texts.bin").unlink()
    else:
        (folder / "meta.json").write_text("{not json")
    (tmp_path / ".tmp-leftover-123").mkdir()  # a crashed writer's temporary folder is never read
    with pytest.warns(UserWarning, match="broken BM25 index cache"):
        rebuilt = BM25Search.from_corpus(subset, cache_dir=tmp_path)
    assert not rebuilt.loaded_from_cache
    assert BM25Search.from_corpus(subset, cache_dir=tmp_path).loaded_from_cache
    query = questions[0].question
    assert rebuilt.search(query) == built.search(query)


def _folders(path):
    return [p for p in path.iterdir() if p.is_dir()]


def test_malformed_corpus_lines_name_file_and_line(tmp_path):
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"title": "A", "text": "a"}\n{"title": "B", "text": \n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2:"):
        load_corpus(bad_json)
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"title": "A", "text": "a"}\n\n{"title": "B"}\n')
    with pytest.raises(DataError, match=r"missing\.jsonl:3: expected a string 'text'"):
        BM25Search.from_corpus(missing, cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match="not found"):
        load_corpus(tmp_path / "absent.jsonl")


def test_titles_are_unescaped_like_the_question_loaders(tmp_path):
    path = tmp_path / "c.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(json.dumps({"title": "Texas A&amp;M", "text": "A university."}) + "\n")
    assert load_corpus(path) == [Passage("Texas A&M", "A university.")]


def test_ties_go_to_the_lower_doc_id_in_both_backends():
    passages = [Passage(f"Copy {i}", "the same words about a red fox") for i in range(7)] + [
        Passage("Other", "a blue whale")
    ]
    for backend in ("swirl", "rank_bm25"):
        search = BM25Search(passages, backend=backend, top_k=5)
        hits = search.search("red fox")
        assert [h.doc_id for h in hits] == [0, 1, 2, 3, 4]
        assert len({h.score for h in hits}) == 1
        assert search.search("red fox") == hits


def test_tool_protocol_and_rendering(search):
    assert isinstance(search, Tool) and (search.name, search.tag) == ("search", "search_query")
    text = search("Maria Golovin opera Menotti")
    blocks = text.split("\n\n")
    assert len(blocks) == search.top_k
    hit = search.search("Maria Golovin opera Menotti")[0]
    assert blocks[0] == f"{hit.title}: {hit.text}"


@pytest.mark.parametrize("query", ["", "   ", "the of which", "?!", "Who was it?"])
def test_queries_without_searchable_words_raise(search, query):
    with pytest.raises(ToolError, match="no searchable words.*stopwords"):
        search(query)
    assert search.search(query) == []


def test_unknown_words_raise_no_results(search):
    with pytest.raises(ToolError, match="No results for 'qqqzzzx xyzzyqq'"):
        search("qqqzzzx xyzzyqq")


def test_search_batch_and_k(search, questions):
    queries = [q.question for q in questions[:20]]
    assert search.search_batch(queries) == search.search_batch(queries, workers=2) == [search.search(q) for q in queries]
    assert len(search.search(queries[0], k=12)) == 12


def test_get_search_shares_one_index(corpus_path, questions, tmp_path):
    a, b = get_search(corpus_path, top_k=3, cache_dir=tmp_path), get_search(corpus_path, top_k=7, cache_dir=tmp_path)
    assert a._engine is b._engine and a.passages is b.passages
    assert (a.top_k, b.top_k) == (3, 7)
    passages = passages_from_questions(questions[:10])
    c, d = get_search(passages=passages), get_search(passages=list(passages))
    assert c._engine is d._engine and len(c) == len(passages)
    with pytest.raises(ValueError, match="exactly one"):
        get_search()


def test_bad_arguments_say_what_was_expected():
    with pytest.raises(ValueError, match="backend"):
        BM25Search([], backend="lucene")
    with pytest.raises(ValueError, match="top_k"):
        BM25Search([], top_k=0)
    with pytest.raises(ValueError, match="expected k"):
        BM25Search([Passage("a", "b")]).search("b", k=-1)
    with pytest.raises(ValueError, match="stopwords"):
        Tokenizer(stopwords="klingon")
    with pytest.raises(ValueError, match="PyStemmer language"):
        Tokenizer(stemmer="klingon")


def test_empty_corpus_finds_nothing():
    search = BM25Search([])
    assert len(search) == 0 and search.search("anything") == []
    assert build_index([], Tokenizer()).n_docs == 0
