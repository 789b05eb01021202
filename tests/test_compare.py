"""The paper's comparison matrix on a tiny setting: every arm trains from one base on one judged data set."""

from __future__ import annotations

import json

import pytest

from swirl_agents.cli import main
from swirl_agents.episodes import read_episodes
from swirl_agents.pipeline.compare import ARMS, arm_transitions

TINY = ["--envs", "SwirlSynthQA-v0", "SwirlSynthMath-v0", "--warm-start-questions", "12", "--recipe.vocab-size", "420",
        "--recipe.n-embd", "48", "--recipe.copy-heads", "1", "--recipe.max-positions", "4096", "--sft.max-steps", "3",
        "--train-questions", "4", "--samples-per-question", "2", "--swirl.max-steps", "1", "--eval-questions", "3",
        "--max-new-tokens", "12", "--batch-size", "8", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    run = tmp_path_factory.mktemp("compare")
    assert main(["compare", "--run-dir", str(run), "--seeds", "0", "1", "--jobs", "2", *TINY]) == 0
    return run, json.loads((run / "results.json").read_text())


def test_every_arm_is_evaluated_on_every_env_for_every_seed(compared):
    run, results = compared
    assert results["arms"] == list(ARMS) and results["seeds"] == [0, 1]
    for arm in ARMS:
        for env in ("SwirlSynthQA-v0", "SwirlSynthMath-v0"):
            cell = results["table"][arm][env]["accuracy"]
            assert len(cell["per_seed"]) == 2 and 0.0 <= cell["mean_std"][0] <= 1.0
    report = (run / "report.md").read_text()
    assert "| swirl_process |" in report and "(d) training on QA alone lifts maths" in report
    assert len(results["findings"]) == 5


def test_generation_and_judging_happen_once_per_seed_and_arms_select_from_them(compared):
    run, results = compared
    for seed in (0, 1):
        data = run / f"seed_{seed}" / "data"
        episodes = list(read_episodes(data / "episodes.jsonl"))
        assert len(episodes) == 2 * 4 * 2  # envs x questions x samples, generated once
        assert not (run / f"seed_{seed}" / "arms" / "sft" / "episodes.jsonl").exists()
        from swirl_agents.judges import read_judgments

        judgments = read_judgments(data / "judgments.jsonl")
        kept = results["kept"][str(seed)] if str(seed) in results["kept"] else results["kept"][seed]
        assert kept["none"]["episodes"] == len(episodes)
        qa = arm_transitions("qa_only", episodes, judgments, seed)
        assert all(t.episode.env_id == "SwirlSynthQA-v0" for t in qa)
        wrong = arm_transitions("swirl_process_wrong", episodes, judgments, seed)
        assert all(not t.episode.correct for t in wrong)
        half = {t.episode_id for t in arm_transitions("process_50", episodes, judgments, seed)}
        assert half <= {t.episode_id for t in arm_transitions("swirl_process", episodes, judgments, seed)}


def test_cross_task_envs_offer_both_tools(compared):
    run, _ = compared
    config = json.loads((run / "seed_0" / "config.json").read_text())
    assert config["env_kwargs"]["SwirlSynthMath-v0"]["tools"] == ["calculator", "search"]
    assert config["env_kwargs"]["SwirlSynthQA-v0"]["tools"] == ["search", "calculator"]


def test_the_benchmark_command_reports_from_the_same_runs(compared, tmp_path):
    """``benchmarks/paper_bench.py`` is ``swirl compare`` plus the report: on a finished run it only writes the page."""
    import importlib.util
    from pathlib import Path

    run, results = compared
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "paper_bench.py"
    spec = importlib.util.spec_from_file_location("paper_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "paper"
    argv = ["--out", str(out), "--work-dir", str(run), "--seeds", "0", "1", "--note", "resumed here", *TINY]
    assert bench.main(argv) == 0
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["command"].startswith("python benchmarks/paper_bench.py --out") and "--note" not in record["command"]
    assert record["note"] == "resumed here" and "Note: resumed here" in out.with_suffix(".md").read_text()
    assert record["table"] == results["table"]
    page = out.with_suffix(".md").read_text()
    for finding in ("(a)", "(b)", "(c)", "(d)", "(e)"):
        assert finding in page
    assert out.with_suffix(".png").stat().st_size > 1000


def test_the_pipelines_rounds_are_not_a_comparison_setting(capsys):
    from swirl_agents.pipeline.compare import CompareConfig

    assert CompareConfig().for_seed(0).rounds == 1  # every arm trains once; a second round is the round_2 arm
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    assert "--rounds" not in capsys.readouterr().out


def test_an_arm_that_kept_no_data_reuses_the_base_policys_evaluation(compared):
    """An arm whose strategy keeps nothing trains nothing; its greedy evaluation is the base policy's, not re-run."""
    run, results = compared
    empty = 0
    for seed in (0, 1):
        same = results["same_policy"].get(str(seed), results["same_policy"].get(seed, {}))
        for arm in ARMS:
            info = run / f"seed_{seed}" / "arms" / arm / "data.json"
            if not info.exists():  # base, and round_2 (its own generation)
                continue
            if json.loads(info.read_text())["transitions"]:
                assert arm not in same and (run / f"seed_{seed}" / "eval" / arm).exists()
                continue
            empty += 1
            assert same[arm] == "base" and not (run / f"seed_{seed}" / "eval" / arm).exists()
    assert empty, "no arm kept an empty data set here, so reuse was not exercised"
    report = (run / "report.md").read_text()
    assert "its greedy evaluation is reused" in report
