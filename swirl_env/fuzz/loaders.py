"""Fuzzing the loaders: random valid records in each published format, written, read back, then damaged.

A valid file must load to exactly its questions and answers. A damaged one (truncated, a flipped
byte, bytes that are not UTF-8, a fake ``.gz``, a record with a key missing or of the wrong type)
must load or raise :class:`~swirl_env.data.paths.DataError` naming the file, and nothing else.
"""

from __future__ import annotations

import atexit
import csv
import gzip
import io
import json
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from swirl_env.data import load_questions
from swirl_env.data.paths import DataError
from swirl_env.fuzz.core import Outcome

_WORDS = ("Paris", "the", "Amber Gate", "é", "naïve", "日本", "1,080", "O'Brien", '"quoted"', "a\\b", "\u200b",
          "tab\there", "line\nbreak", "🙂", "&amp;", "<answer>", "#### 5", "null")


@dataclass(frozen=True)
class Case:
    """One file to load: which loader, its name (the suffix picks the format), its bytes, and what it
    must load to (``None`` when the file was damaged)."""

    dataset: str
    name: str
    data: bytes
    expected: tuple[tuple[str, str], ...] | None

    def __repr__(self) -> str:
        return f"Case({self.dataset}, {self.name}, {len(self.data)} bytes, {'damaged' if self.expected is None else 'valid'})"


def _text(rng: random.Random, words: int = 4) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, words))).strip() or "q"


def _answer(rng: random.Random) -> str:
    return rng.choice((_text(rng, 2), str(rng.randint(-10**6, 10**6)), "yes", "no"))


def _hotpot_record(rng: random.Random, i: int, hf: bool = False) -> dict:
    titles = [f"{_text(rng, 2)} {i}-{k}" for k in range(rng.randint(1, 3))]
    sentences = [[_text(rng, 6) for _ in range(rng.randint(1, 3))] for _ in titles]
    facts = [[t, 0] for t in titles[:2]]
    record = {"question": _text(rng, 8), "answer": _answer(rng), "type": "bridge", "level": "hard"}
    if hf:
        return {**record, "id": f"h{i}", "supporting_facts": {"title": [f[0] for f in facts], "sent_id": [0] * len(facts)},
                "context": {"title": titles, "sentences": sentences}}
    return {**record, "_id": f"h{i}", "supporting_facts": facts, "context": [list(p) for p in zip(titles, sentences)]}


def _musique_record(rng: random.Random, i: int) -> dict:
    paragraphs = [{"idx": k, "title": _text(rng, 2), "paragraph_text": _text(rng, 8), "is_supporting": k < 2}
                  for k in range(rng.randint(2, 5))]
    hops = [{"id": k, "question": _text(rng, 5), "answer": _answer(rng), "paragraph_support_idx": k} for k in range(2)]
    return {"id": f"2hop__{i}_{i + 1}", "paragraphs": paragraphs, "question": _text(rng, 8),
            "question_decomposition": hops, "answer": _answer(rng), "answer_aliases": [_answer(rng)], "answerable": True}


def _gsm8k_record(rng: random.Random, i: int) -> dict:
    final = f"{rng.randint(0, 10**7):,}" if rng.random() < 0.3 else str(rng.randint(-50, 10**4))
    return {"question": _text(rng, 10), "answer": f"{_text(rng, 5)} <<2*3=6>>6\n#### {final}"}


RECORDS: dict[str, Callable[[random.Random, int], dict]] = {
    "hotpotqa": _hotpot_record,
    "hotpotqa-hf": lambda rng, i: _hotpot_record(rng, i, hf=True),
    "musique": _musique_record,
    "gsm8k": _gsm8k_record,
    "bamboogle": lambda rng, i: {"id": f"b{i}", "question": _text(rng, 8), "golden_answers": [_answer(rng)]},
    "2wikimultihopqa": lambda rng, i: {**_hotpot_record(rng, i), "evidences": [["A", "director", "B"]]},
    "beerqa": lambda rng, i: {"id": f"r{i}", "src": "squad", "question": _text(rng, 8), "answers": [_answer(rng)],
                              "context": [[_text(rng, 2), _text(rng, 8)]]},
    "cofca": lambda rng, i: {"id": f"c{i}", "question": _text(rng, 8), "answer": _answer(rng), "passage": _text(rng, 8),
                             "sub_questions": [{"question": _text(rng, 4), "answer": _answer(rng)}], "hop": 2},
}
"""Record maker per format: a published record with random (unicode, punctuation) text."""

SUFFIXES = {"hotpotqa": (".json", ".json.gz", ".jsonl"), "hotpotqa-hf": (".jsonl", ".jsonl.gz"),
            "musique": (".jsonl", ".jsonl.gz", ".json"), "gsm8k": (".jsonl", ".jsonl.gz"),
            "bamboogle": (".jsonl", ".csv"), "2wikimultihopqa": (".json",), "beerqa": (".json",), "cofca": (".json",)}


def expected(kind: str, record: dict) -> tuple[str, str]:
    """(question, first gold answer) that a record must load to."""
    if kind == "gsm8k":
        return record["question"], record["answer"].rpartition("####")[2].strip()
    if kind == "bamboogle":
        return record["question"], record["golden_answers"][0]
    if kind == "beerqa":
        return record["question"], record["answers"][0]
    return record["question"], record["answer"]


def encode(kind: str, name: str, records: list[dict]) -> bytes:
    """The records in the format that ``name``'s suffix says (gzip for ``.gz``)."""
    plain = name.removesuffix(".gz")
    if plain.endswith(".csv"):
        out = io.StringIO()
        csv.writer(out).writerows([r["question"], "", "", "", r["golden_answers"][0]] for r in records)
        data = out.getvalue().encode()
    elif plain.endswith(".jsonl"):  # every other record with \u escapes: both are valid JSON
        data = "".join(json.dumps(r, ensure_ascii=i % 2 == 0) + "\n" for i, r in enumerate(records)).encode()
    else:
        data = json.dumps({"version": "1.0", "data": records} if kind == "beerqa" else records, ensure_ascii=False).encode()
    return gzip.compress(data, mtime=0) if name.endswith(".gz") else data


def random_case(rng: random.Random) -> Case:
    """A valid file (40%), or one damaged at the byte level or the record level."""
    kind = rng.choice(sorted(RECORDS))
    name = "case" + rng.choice(SUFFIXES[kind])
    records = [RECORDS[kind](rng, i) for i in range(rng.randint(0, 4))]
    if csv_header_clash(name, records):
        records = records[1:]
    dataset = kind.removesuffix("-hf")
    r = rng.random()
    if r < 0.4:
        return Case(dataset, name, encode(kind, name, records), tuple(expected(kind, rec) for rec in records))
    if r < 0.7 and records and not name.endswith(".csv"):
        return Case(dataset, name, encode(kind, name, _damage_record(rng, records)), None)
    return Case(dataset, name, _damage_bytes(rng, encode(kind, name, records), name), None)


def csv_header_clash(name: str, records: list[dict]) -> bool:
    """The Bamboogle CSV reader skips a first row whose question is 'question' (a header some copies add)."""
    return name.endswith(".csv") and bool(records) and records[0]["question"].strip().lower() == "question"


_JUNK = (None, 0, -1, 1.5, True, "", "x", [], {}, [[]], [None], {"a": 1}, [["t"]], [["t", 1]], "x" * 300, 10**30)


def _damage_record(rng: random.Random, records: list[dict]) -> list[dict]:
    """One value anywhere in one record replaced by junk or deleted (a random walk down the JSON tree)."""
    records = json.loads(json.dumps(records))
    node: dict | list = rng.choice(records)
    while True:
        keys = sorted(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            return records
        key = rng.choice(keys)
        if isinstance(node[key], (dict, list)) and node[key] and rng.random() < 0.6:
            node = node[key]
            continue
        if isinstance(node, dict) and rng.random() < 0.3:
            del node[key]
        else:
            node[key] = rng.choice(_JUNK)
        return records


def _damage_bytes(rng: random.Random, data: bytes, name: str) -> bytes:
    how = rng.choice(("truncate", "flip", "not_utf8", "fake_gzip", "garbage", "empty", "not_a_list"))
    if how == "not_a_list":
        data = json.dumps(rng.choice(_JUNK)).encode()
        return gzip.compress(data, mtime=0) if name.endswith(".gz") else data
    if how == "truncate":
        return data[: rng.randrange(len(data))] if data else b""
    if how == "flip" and data:
        i = rng.randrange(len(data))
        return data[:i] + bytes([rng.randrange(256)]) + data[i + 1:]
    if how == "not_utf8":
        plain = gzip.decompress(data) if name.endswith(".gz") else data
        i = rng.randrange(len(plain) + 1)
        damaged = plain[:i] + rng.choice((b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80abc")) + plain[i:]
        return gzip.compress(damaged, mtime=0) if name.endswith(".gz") else damaged
    if how == "fake_gzip":
        return gzip.decompress(data) if name.endswith(".gz") else gzip.compress(data)
    if how == "garbage":
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))) + data
    return b""


class _Folder:
    """One temporary folder per process for the files under test, removed at exit."""

    path: Path | None = None

    @classmethod
    def get(cls) -> Path:
        if cls.path is None:
            cls.path = Path(tempfile.mkdtemp(prefix="swirl-fuzz-"))
            atexit.register(shutil.rmtree, cls.path, True)
        return cls.path


def check_loader(case: Case) -> Outcome:
    """Write the case, load it; classify the result (see the module docstring)."""
    path = _Folder.get() / case.name
    path.write_bytes(case.data)
    try:
        questions = load_questions(case.dataset, path)
    except DataError as error:
        if str(path) not in str(error):
            return Outcome("wrong", f"the error does not name the file: {error}")
        return Outcome("data_error" if case.expected is None else "wrong", f"a valid file refused: {error}")
    except Exception as error:  # noqa: BLE001 - the point is to catch what should never escape
        return Outcome("crash", f"{type(error).__name__}: {str(error)[:200]}")
    got = tuple((q.question, q.answer) for q in questions)
    if case.expected is not None and got != case.expected:
        return Outcome("wrong", f"loaded {got[:2]}, expected {case.expected[:2]}")
    return Outcome("loaded")


def target() -> tuple:
    """(generator, checker) for the loaders."""
    return random_case, check_loader
