"""Damaged data files: every loader raises DataError naming the file (and line), never a raw exception.

Covers the failure kinds one by one on real data (a truncated gzip, a ``.gz`` that is not gzip,
bytes that are not UTF-8 in JSON, JSONL and CSV), then with hypothesis: random valid records in
every published format load back exactly, and random damage loads or raises DataError.
"""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swirl_env.data import DataError, load_questions
from swirl_env.fuzz import loaders as loader_fuzz
from tests.conftest import require_data


def test_a_truncated_gzip_names_the_file_and_the_line(tmp_path):
    full = require_data("gsm8k/train.jsonl.gz").read_bytes()
    path = tmp_path / "train.jsonl.gz"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(DataError, match=rf"{path}:\d+: the gzip data ends early.*fetch it again") as error:
        load_questions("gsm8k", path)
    assert error.value.path == str(path) and error.value.line > 3000  # about half of 7,473 lines were read
    assert len(load_questions("gsm8k", path, limit=100)) == 100  # what is intact still loads


def test_a_gz_that_is_not_gzip_names_the_file(tmp_path):
    path = tmp_path / "test.jsonl.gz"
    path.write_bytes(require_data("gsm8k/test.jsonl").read_bytes())
    with pytest.raises(DataError, match=rf"{path}: not a gzip file .*rename it without \.gz"):
        load_questions("gsm8k", path)


@pytest.mark.parametrize(
    "dataset, relpath, name",
    [
        ("gsm8k", "gsm8k/test.jsonl", "test.jsonl"),
        ("hotpotqa", "hotpotqa/hotpot_train_subset.json", "train.json"),
        ("bamboogle", "bamboogle/bamboogle.csv", "bamboogle.csv"),
        ("musique", "musique/musique_dev_subset_with_paragraphs.jsonl.gz", "dev.jsonl.gz"),
    ],
)
def test_bytes_that_are_not_utf8_name_the_file_line_and_column(tmp_path, dataset, relpath, name):
    data = require_data(relpath).read_bytes()
    data = gzip.decompress(data) if relpath.endswith(".gz") else data
    lines = data.split(b"\n")
    lines[4] = lines[4][:7] + b"\xff" + lines[4][7:]  # line 5, column 8
    damaged = b"\n".join(lines)
    path = tmp_path / name
    path.write_bytes(gzip.compress(damaged) if name.endswith(".gz") else damaged)
    with pytest.raises(DataError, match=rf"{path}:5: not UTF-8 \(byte b'\\xff' at column 8\)") as error:
        load_questions(dataset, path)
    assert (error.value.path, error.value.line) == (str(path), 5)


def test_a_damaged_gzip_stream_is_a_data_error(tmp_path):
    data = bytearray(require_data("gsm8k/train.jsonl.gz").read_bytes())
    data[5000:5008] = b"\x00" * 8
    path = tmp_path / "train.jsonl.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=str(path)):
        load_questions("gsm8k", path)


def test_a_byte_order_mark_is_not_part_of_the_first_record(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + require_data("gsm8k/test.jsonl").read_bytes())
    assert load_questions("gsm8k", path, limit=1)[0].answer == "18"


def test_json_nested_too_deeply_or_with_a_huge_number_is_a_data_error(tmp_path):
    path = tmp_path / "dev.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataError, match=rf"{path}: invalid JSON \(nested too deeply\)"):
        load_questions("hotpotqa", path)
    lines = tmp_path / "test.jsonl"
    lines.write_text('{"question": "q", "answer": "#### 1"}\n{"question": ' + "9" * 5000 + "}\n")
    with pytest.raises(DataError, match=rf"{lines}:2: invalid JSON"):
        load_questions("gsm8k", lines)


def test_a_musique_paragraph_index_that_is_not_a_number_is_named(tmp_path):
    record = {"id": "2hop__1_2", "question": "q", "answer": "a",
              "paragraphs": [{"idx": [0], "title": "T", "paragraph_text": "P", "is_supporting": True}]}
    path = tmp_path / "dev.jsonl"
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(DataError, match=rf"expected 'idx' of paragraph 0 of line 1 of {path} to be int"):
        load_questions("musique", path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.randoms(use_true_random=False))
def test_random_records_round_trip_and_random_damage_is_a_data_error(rng):
    case = loader_fuzz.random_case(rng)
    outcome = loader_fuzz.check_loader(case)
    assert outcome.kind in ("loaded", "data_error"), (case, outcome)
    if case.expected is not None:
        assert outcome.kind == "loaded", (case, outcome)
