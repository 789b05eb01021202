"""Questions from the Hugging Face ``datasets`` schemas saved locally: Parquet, Arrow, save_to_disk.

The shared data is converted here, in a temporary folder, to the schema the Hub serves
(``hotpot_qa`` distractor, a MuSiQue mirror, ``openai/gsm8k`` main) with ``datasets`` itself, and
must load through the envs to exactly the questions the JSON files give.
"""

from __future__ import annotations

import gymnasium as gym
import pytest

import swirl_env  # noqa: F401 - registers the env ids
from swirl_env.data import DataError, load_questions
from swirl_env.data.paths import iter_jsonl, read_json
from tests.conftest import require_data

datasets = pytest.importorskip("datasets")
pytest.importorskip("pyarrow")
Value, Sequence = datasets.Value, datasets.Sequence

HOTPOT_FEATURES = datasets.Features({
    "id": Value("string"), "question": Value("string"), "answer": Value("string"),
    "type": Value("string"), "level": Value("string"),
    "supporting_facts": Sequence({"title": Value("string"), "sent_id": Value("int32")}),
    "context": Sequence({"title": Value("string"), "sentences": Sequence(Value("string"))}),
})
MUSIQUE_FEATURES = datasets.Features({
    "id": Value("string"), "question": Value("string"), "answer": Value("string"),
    "answer_aliases": [Value("string")], "answerable": Value("bool"),
    "paragraphs": [{"idx": Value("int32"), "title": Value("string"), "paragraph_text": Value("string"),
                    "is_supporting": Value("bool")}],
    "question_decomposition": [{"id": Value("int32"), "question": Value("string"), "answer": Value("string"),
                                "paragraph_support_idx": Value("int32")}],
})


def _hotpot_hf_rows(official: list[dict]) -> list[dict]:
    """The official HotpotQA records in the Hub's column layout (pairs become parallel lists)."""
    return [{
        "id": r["_id"], "question": r["question"], "answer": r["answer"], "type": r["type"], "level": r["level"],
        "supporting_facts": {"title": [t for t, _ in r["supporting_facts"]], "sent_id": [i for _, i in r["supporting_facts"]]},
        "context": {"title": [t for t, _ in r["context"]], "sentences": [s for _, s in r["context"]]},
    } for r in official]


def test_hotpotqa_parquet_in_the_hub_schema_loads_through_the_env_as_json_does(tmp_path):
    path = require_data("hotpotqa/hotpot_dev_distractor_subset.json.gz")
    table = datasets.Dataset.from_list(_hotpot_hf_rows(read_json(path)), features=HOTPOT_FEATURES)
    parquet = tmp_path / "validation-00000-of-00001.parquet"
    table.to_parquet(parquet)
    env = gym.make("SwirlHotpot-v0", data_path=parquet)
    assert env.unwrapped.questions == load_questions("hotpotqa", path)
    assert len(env.unwrapped.questions) == 1267
    obs, info = env.reset(seed=0)
    assert info["question"] in obs


def test_gsm8k_parquet_loads_through_the_env_as_jsonl_does(tmp_path):
    path = require_data("gsm8k/test.jsonl")
    rows = [row for _, row in iter_jsonl(path)]
    parquet = tmp_path / "test-00000-of-00001.parquet"
    datasets.Dataset.from_list(rows).to_parquet(parquet)
    env = gym.make("SwirlGSM8K-v0", data_path=parquet)
    assert env.unwrapped.questions == load_questions("gsm8k", path)
    assert [q.answer for q in env.unwrapped.questions[:3]] == ["18", "3", "70000"]


def test_musique_save_to_disk_folder_loads_as_jsonl_does(tmp_path):
    path = require_data("musique/musique_dev_subset_with_paragraphs.jsonl.gz")
    rows = [row for _, row in iter_jsonl(path)]
    folder = tmp_path / "musique_dev"
    datasets.Dataset.from_list(rows, features=MUSIQUE_FEATURES).save_to_disk(folder)
    questions = load_questions("musique", folder)
    assert questions == load_questions("musique", path)
    assert all(q.supporting_facts for q in questions)


def test_a_dataset_dict_folder_is_read_by_split(tmp_path):
    rows = [row for _, row in iter_jsonl(require_data("gsm8k/test.jsonl"))]
    folder = tmp_path / "gsm8k"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:5]),
                          "test": datasets.Dataset.from_list(rows[5:12])}).save_to_disk(folder)
    assert len(load_questions("gsm8k", folder, split="test")) == 7
    assert len(load_questions("gsm8k", folder, split="train")) == 5
    with pytest.raises(DataError, match=r"expected a split 'dev' .* actual \['train', 'test'\]"):
        load_questions("gsm8k", folder, split="dev")


def test_a_damaged_parquet_file_is_a_data_error_naming_it(tmp_path):
    parquet = tmp_path / "test.parquet"
    datasets.Dataset.from_list([{"question": "q", "answer": "s\n#### 1"}] * 50).to_parquet(parquet)
    data = parquet.read_bytes()
    parquet.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=rf"{parquet}: not a readable .parquet table"):
        load_questions("gsm8k", parquet)
