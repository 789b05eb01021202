"""Dataset loaders on the real benchmark files (counts from ../shared/data/README.md), fixtures and errors."""

from __future__ import annotations

import json
import shutil

import pytest

from swirl_env.data import DATASETS, DataError, Question, load_questions
from swirl_env.data.gsm8k import split_solution
from tests.conftest import FIXTURES, require_data

# --- HotpotQA -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hotpot_dev() -> list[Question]:
    require_data("hotpotqa/hotpot_dev_distractor_subset.json.gz")
    return load_questions("hotpotqa", split="dev")


def test_hotpot_dev_default_count_and_fields(hotpot_dev):
    assert len(hotpot_dev) == 1267
    assert len({q.id for q in hotpot_dev}) == 1267
    assert all(q.dataset == "hotpotqa" and q.answer and q.type in ("bridge", "comparison") for q in hotpot_dev)
    assert all(len(q.paragraphs) >= 2 and q.level for q in hotpot_dev)


def test_hotpot_supporting_titles_are_paragraph_titles(hotpot_dev):
    for q in hotpot_dev:
        titles = {p.title for p in q.paragraphs}
        assert q.supporting_facts and {t for t, _ in q.supporting_facts} <= titles, q.id
        marked = {p.title for p in q.paragraphs if p.is_supporting}
        assert marked == {t for t, _ in q.supporting_facts}, q.id


def test_hotpot_titles_are_unescaped(hotpot_dev):
    titles = [p.title for q in hotpot_dev for p in q.paragraphs] + [t for q in hotpot_dev for t, _ in q.supporting_facts]
    assert not [t for t in titles if "&amp;" in t or "&quot;" in t]
    assert "Texas A&M Aggies football" in {t for q in hotpot_dev for t, _ in q.supporting_facts}


def test_hotpot_hf_schema_agrees_with_official(hotpot_dev):
    path = require_data("hotpotqa/hf_schema_dev_sample.jsonl.gz")
    hf = load_questions("hotpotqa", path)
    official = {q.id: q for q in hotpot_dev}
    assert len(hf) == 300
    assert all(q == official[q.id] for q in hf)


def test_hotpot_train_default():
    require_data("hotpotqa/hotpot_train_subset.json")
    train = load_questions("hotpotqa", split="train")
    assert len(train) == 100
    assert all(q.answer and q.paragraphs and q.supporting_titles for q in train)


def test_hotpot_questions_only_gets_stable_ids():
    path = require_data("hotpotqa/hotpot_dev_questions.json.gz")
    qs = load_questions("hotpotqa", path, split="dev")
    assert len(qs) == 7405
    assert qs[0].id == "hotpotqa-dev-0" and qs[-1].id == "hotpotqa-dev-7404"
    assert sum(q.answer in ("yes", "no") for q in qs) == 458
    assert all(not q.paragraphs and q.type for q in qs)
    assert [q.id for q in load_questions("hotpotqa", path, limit=3)] == [q.id for q in qs[:3]]


def test_hotpot_test_set_without_answers_loads(tmp_path):
    record = {"_id": "t1", "question": "Q?", "context": [["A &amp; B", ["s0.", " s1."]]], "type": "bridge", "level": "hard"}
    path = tmp_path / "hotpot_test.json"
    path.write_text(json.dumps([record]))
    (q,) = load_questions("hotpotqa", path, split="test")
    assert q.answers == () and q.supporting_facts == ()
    assert q.paragraphs[0].title == "A & B" and q.paragraphs[0].text == "s0. s1."


# --- MuSiQue --------------------------------------------------------------------------------------


def test_musique_with_paragraphs():
    require_data("musique/musique_dev_subset_with_paragraphs.jsonl.gz")
    qs = load_questions("musique")
    assert len(qs) == 200
    assert all(len(q.paragraphs) == 20 and len(q.hops) >= 2 for q in qs)
    assert sum(len(q.answers) > 1 for q in qs) == 61  # questions with answer_aliases
    for q in qs:
        supporting = {p.title for p in q.paragraphs if p.is_supporting}
        assert all(h.paragraph_title in supporting for h in q.hops), q.id
        assert q.type == q.id.split("__")[0]
        # the data marks supporting paragraphs: episodes report them as supporting facts, not ()
        assert {title for title, _ in q.supporting_facts} == supporting and q.supporting_facts, q.id
    assert any("#1" in h.question for q in qs for h in q.hops)


def test_musique_without_paragraphs_agrees():
    path = require_data("musique/musique_ans_dev_no_paragraphs.json.gz")
    qs = load_questions("musique", path)
    assert len(qs) == 2417
    assert all(not q.paragraphs and q.hops and all(h.paragraph_title for h in q.hops) for q in qs)
    full = {q.id: q for q in load_questions("musique", require_data("musique/musique_dev_subset_with_paragraphs.jsonl.gz"))}
    shared = [q for q in qs if q.id in full]
    assert len(shared) == 200
    assert all(q.answers == full[q.id].answers and q.hops == full[q.id].hops for q in shared)


# --- GSM8K ----------------------------------------------------------------------------------------


def test_gsm8k_counts_answers_and_solutions():
    require_data("gsm8k/train.jsonl.gz")
    require_data("gsm8k/test.jsonl")
    train, test = load_questions("gsm8k", split="train"), load_questions("gsm8k", split="test")
    assert (len(train), len(test)) == (7473, 1319)
    assert train[0].id == "gsm8k-train-0" and test[-1].id == "gsm8k-test-1318"
    both = train + test
    separated = [q for q in both if "," in q.answer]
    assert len(separated) == 93
    assert all(q.answers == (q.answer, q.answer.replace(",", "")) for q in separated)
    assert all(len(q.answers) == 1 for q in both if "," not in q.answer)
    assert all("####" not in q.solution and q.solution for q in both)
    assert sum("<<" in q.solution for q in both) > 0.9 * len(both)


def test_gsm8k_default_split_is_test():
    require_data("gsm8k/test.jsonl")
    assert load_questions("gsm8k", limit=2)[1].id == "gsm8k-test-1"


def test_split_solution():
    assert split_solution("a <<1+1=2>>2\n#### 1,000") == ("a <<1+1=2>>2", "1,000")


# --- Bamboogle, 2WikiMultihopQA ---------------------------------------------------------------------


def test_bamboogle_formats_agree():
    jsonl = load_questions("bamboogle", require_data("bamboogle/test.jsonl"))
    csv = load_questions("bamboogle", require_data("bamboogle/bamboogle.csv"))
    assert len(jsonl) == len(csv) == 125
    assert [q.question for q in jsonl] == [q.question for q in csv]
    assert [q.answer for q in jsonl] == [q.answer for q in csv]
    assert jsonl[0].id == "test_0" and csv[0].id == "bamboogle-test-0"
    assert any(len(q.answers) == 2 for q in csv)  # the alternative-answer column


def test_2wiki_questions_only():
    require_data("2wikimultihopqa/dev_questions.json.gz")
    qs = load_questions("2wikimultihopqa")
    assert len(qs) == 12576
    assert qs[0].answer == "Małgorzata Braunek" and qs[0].id == "2wikimultihopqa-dev-0"


def test_2wiki_official_format_evidences_become_hops(tmp_path):
    record = {
        "_id": "w1", "type": "compositional", "question": "Who is the mother of the director of X?", "answer": "M",
        "context": [["X", ["X is a film directed by D."]], ["D", ["D is the son of M."]]],
        "supporting_facts": [["X", 0], ["D", 0]],
        "evidences": [["X", "director", "D"], ["D", "mother", "M"]],
    }
    path = tmp_path / "dev.json"
    path.write_text(json.dumps([record]))
    (q,) = load_questions("2wikimultihopqa", path)
    assert [(h.question, h.answer, h.paragraph_title) for h in q.hops] == [("X >> director", "D", "X"), ("D >> mother", "M", "D")]
    assert q.supporting_titles == ("X", "D") and q.type == "compositional"


# --- Fixtures: BeerQA, CofCA ----------------------------------------------------------------------


def test_beerqa_fixture():
    qs = load_questions("beerqa", FIXTURES / "beerqa_sample.json")
    assert [q.id for q in qs] == ["fixture-squad-0001", "fixture-hotpot-0002", "fixture-beer-0003"]
    assert [q.type for q in qs] == ["squad", "hotpotqa", "beerqa"]
    assert qs[1].answers == ("Marren Tull", "M. Tull")
    assert qs[1].paragraphs[0].title == "Lantern & Loom"
    assert [len(q.paragraphs) for q in qs] == [1, 2, 3] and all(p.is_supporting for q in qs for p in q.paragraphs)


def test_beerqa_test_questions_without_answers(tmp_path):
    path = tmp_path / "beerqa_test_questions_v1.0.json"
    path.write_text(json.dumps({"version": "1.0", "split": "test", "data": [{"id": "x", "src": "beerqa", "question": "Q?"}]}))
    (q,) = load_questions("beerqa", path, split="test")
    assert q.answers == () and q.paragraphs == ()


def test_default_files_found_through_swirl_data_dir(tmp_path, monkeypatch):
    (tmp_path / "beerqa").mkdir()
    shutil.copy(FIXTURES / "beerqa_sample.json", tmp_path / "beerqa" / "beerqa_dev_v1.0.json")
    monkeypatch.setenv("SWIRL_DATA_DIR", str(tmp_path))
    assert len(load_questions("beerqa", split="dev")) == 3
    with pytest.raises(DataError, match="SWIRL_DATA_DIR") as err:
        load_questions("beerqa", split="train")
    assert "beerqa_train_v1.0.json" in str(err.value) and "beerqa.github.io" in str(err.value)


def test_cofca_fixture():
    two, three = load_questions("cofca", FIXTURES / "cofca_sample.json")
    assert (two.type, three.type) == ("2-hop", "3-hop")
    assert [h.answer for h in two.hops] == ["Idra Vell", "Keswin"] and two.hops[-1].answer == two.answer
    assert len(three.hops) == 3 and three.answers == ("the Ossel", "Ossel River")
    assert two.supporting_titles == ("Brightwater Guild", "Idra Vell")
    assert three.paragraphs[0].title == "Brightwater Guild" and three.paragraphs[0].is_supporting


# --- Errors ---------------------------------------------------------------------------------------


def test_unknown_dataset_suggests_a_name():
    with pytest.raises(ValueError, match=r"Did you mean 'musique'\?.*hotpotqa"):
        load_questions("musiqe")


def test_unknown_split_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown split 'dev' for gsm8k.*test, train"):
        load_questions("gsm8k", split="dev")


def test_negative_limit_is_rejected():
    with pytest.raises(ValueError, match="limit"):
        load_questions("gsm8k", FIXTURES / "beerqa_sample.json", limit=-1)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found.*nope.jsonl.*grade-school-math"):
        load_questions("gsm8k", tmp_path / "nope.jsonl")


def test_bad_json_line_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"question": "q", "answer": "s\n#### 1"})
    path.write_text(f"{good}\n{good}\n{{not json\n")
    with pytest.raises(DataError, match=":3"):
        load_questions("gsm8k", path)
    assert len(load_questions("gsm8k", path, limit=2)) == 2  # limit stops before the bad line


def test_bad_json_list_names_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[\n{"question": "q"},\n{"question": }\n]')
    with pytest.raises(DataError, match=r"bad.json:3:"):
        load_questions("hotpotqa", path)


def test_missing_field_names_record_and_file(tmp_path):
    path = tmp_path / "dev.json"
    path.write_text(json.dumps([{"question": "q", "answer": "a"}, {"answer": "a"}]))
    with pytest.raises(DataError, match=rf"expected key 'question' in record 1 of {path}"):
        load_questions("hotpotqa", path)
    jsonl = tmp_path / "dev.jsonl"
    jsonl.write_text('{"id": "a", "question": "q"}\n\n{"id": "b"}\n')
    with pytest.raises(DataError, match=rf"expected key 'question' in line 3 of {jsonl}"):
        load_questions("musique", jsonl)


def test_gsm8k_answer_without_marker(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": "s\n#### 1"}) + "\n" + json.dumps({"question": "q", "answer": "42"}) + "\n")
    with pytest.raises(DataError, match=rf"line 2 of {path}.*####"):
        load_questions("gsm8k", path)


def test_wrong_top_level_type(tmp_path):
    path = tmp_path / "dev.json"
    path.write_text(json.dumps({"question": "q"}))
    with pytest.raises(DataError, match="expected a JSON list of records"):
        load_questions("hotpotqa", path)
    path.write_text(json.dumps(["just a string"]))
    with pytest.raises(DataError, match="expected a JSON object in record 0"):
        load_questions("2wikimultihopqa", path)


def test_malformed_context_and_csv(tmp_path):
    path = tmp_path / "dev.json"
    path.write_text(json.dumps([{"question": "q", "context": [["only a title"]]}]))
    with pytest.raises(DataError, match="'context' in record 0.*pair"):
        load_questions("hotpotqa", path)
    csv = tmp_path / "bamboogle.csv"
    csv.write_text("Who?,,,,Someone,,\nWhat?,,\n")
    with pytest.raises(DataError, match=r"bamboogle.csv:2: expected"):
        load_questions("bamboogle", csv)


def test_every_dataset_has_a_reader_and_splits():
    assert set(DATASETS) == {"hotpotqa", "musique", "gsm8k", "beerqa", "cofca", "bamboogle", "2wikimultihopqa"}
    assert all(splits and all(files for files in splits.values()) for splits in DATASETS.values())
