"""MuSiQue (Trivedi et al., 2022): the official JSONL and the JSON-list form without paragraphs.

Official record (``musique_ans_v1.0_dev.jsonl``)::

    {id, paragraphs: [{idx, title, paragraph_text, is_supporting}], question,
     question_decomposition: [{id, question, answer, paragraph_support_idx}],
     answer, answer_aliases, answerable}

The test file has no ``answer`` nor decomposition and loads with empty answers. Paragraphs marked
``is_supporting`` become ``supporting_facts`` ``(title, 0)`` (a MuSiQue paragraph is not split
into sentences, so the whole paragraph is sentence 0). Decomposition
questions keep MuSiQue's own text, ``#1``-style references to earlier answers included. A hop's
paragraph title comes from ``paragraph_support_idx`` when the record has paragraphs, else from
``document_id`` (``"Green (Steve Hillage album)_0"`` -> ``"Green (Steve Hillage album)"``).
"""

from __future__ import annotations

import os

from swirl_env.data.paths import DataError
from swirl_env.data.records import Record, answers_tuple, check_type, iter_records, optional, record_id, require, take
from swirl_env.data.types import Hop, Paragraph, Question

DEFAULT_FILES: dict[str, tuple[str, ...]] = {
    "dev": (
        "musique/musique_ans_v1.0_dev.jsonl",
        "musique/musique_dev_subset_with_paragraphs.jsonl.gz",
        "musique/musique_ans_dev_no_paragraphs.json.gz",
    ),
    "train": ("musique/musique_ans_v1.0_train.jsonl",),
    "test": ("musique/musique_ans_v1.0_test.jsonl",),
}
"""Files tried in order under the data directory, per split."""


def read_musique(path: str | os.PathLike, *, split: str = "dev", limit: int | None = None) -> list[Question]:
    """Read MuSiQue questions from a JSONL file or a JSON list.

    Answers are the gold answer then its aliases; ``type`` is the id's hop pattern (``2hop``,
    ``3hop1``, ...), which MuSiQue encodes there.

    Example:
        >>> from swirl_env.data.paths import data_dir
        >>> q = read_musique(data_dir() / "musique/musique_dev_subset_with_paragraphs.jsonl.gz", limit=1)[0]
        >>> q.type, len(q.paragraphs), len(q.hops), len(q.supporting_facts)
        ('2hop', 20, 2, 2)
    """
    return [parse_record(r, split) for r in take(iter_records(path), limit)]


def parse_record(record: Record, split: str) -> Question:
    """One MuSiQue record as a :class:`Question`."""
    qid = record_id(record, "musique", split, keys=("id",))
    paragraphs = _paragraphs(record)
    aliases = optional(record, "answer_aliases", list, [])
    return Question(
        id=qid,
        question=require(record, "question"),
        answers=answers_tuple(optional(record, "answer", str, ""), aliases),
        dataset="musique",
        # A MuSiQue paragraph is one unit of evidence: sentence 0 of a supporting paragraph is the fact.
        supporting_facts=tuple(dict.fromkeys((p.title, 0) for _, p in paragraphs if p.is_supporting)),
        paragraphs=tuple(p for _, p in paragraphs),
        hops=_hops(record, dict(paragraphs)),
        type=qid.split("__")[0] if "__" in qid else "",
    )


def _paragraphs(record: Record) -> list[tuple[int, Paragraph]]:
    """``(idx, Paragraph)`` pairs; ``idx`` defaults to the position when a paragraph lacks it."""
    out = []
    for position, raw in enumerate(optional(record, "paragraphs", list, [])):
        what = f"paragraph {position} of {record.where}"
        raw = check_type(raw, dict, what)
        for key in ("title", "paragraph_text"):
            if not isinstance(raw.get(key), str):
                raise DataError(f"expected string key {key!r} in {what}, actual keys {sorted(raw)}")
        idx = check_type(raw.get("idx", position), int, f"'idx' of {what}")
        out.append((idx, Paragraph(raw["title"], (raw["paragraph_text"],), bool(raw.get("is_supporting", False)))))
    return out


def _hops(record: Record, by_idx: dict[int, Paragraph]) -> tuple[Hop, ...]:
    hops = []
    for position, raw in enumerate(optional(record, "question_decomposition", list, [])):
        what = f"question_decomposition[{position}] of {record.where}"
        raw = check_type(raw, dict, what)
        if not isinstance(raw.get("question"), str):
            raise DataError(f"expected string key 'question' in {what}, actual keys {sorted(raw)}")
        hops.append(Hop(raw["question"], str(raw.get("answer") or ""), _hop_title(raw, by_idx)))
    return tuple(hops)


def _hop_title(raw: dict, by_idx: dict[int, Paragraph]) -> str:
    support = raw.get("paragraph_support_idx")
    if isinstance(support, int) and support in by_idx:
        return by_idx[support].title
    doc = raw.get("document_id")
    if isinstance(doc, str) and "_" in doc:
        return doc.rsplit("_", 1)[0]
    return ""
