"""The whole SWiRL pipeline in a small setting: run folder contents, report, resume, a real-data env."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from swirl_agents.configs import add_dataclass_arguments, field_docs, from_namespace
from swirl_agents.episodes import read_episodes
from swirl_agents.pipeline import PipelineConfig, RecipeConfig, run_pipeline
from swirl_agents.training import TrainConfig
from tests.conftest import require_data

ENVS = ("SwirlSynthQA-v0", "SwirlSynthMath-v0")
# A 1-layer model trained for a few steps writes mostly malformed steps, which the process filter
# drops; "none" keeps them so that the SWiRL stage always has data to train on.
SMALL = dict(warm_start_questions=12, recipe=RecipeConfig(vocab_size=420, n_embd=48, n_head=6, copy_heads=1,
                                                          max_positions=4096),
             sft=TrainConfig(objective="sft", learning_rate=3e-3, max_steps=3, max_tokens_per_batch=2048),
             train_questions=3, samples_per_question=2, strategy="none",
             swirl=TrainConfig(learning_rate=3e-4, max_steps=2, max_tokens_per_batch=2048), eval_questions=3,
             max_new_tokens=12, batch_size=8, threads=1, progress=False)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    config = PipelineConfig(run_dir=str(tmp_path_factory.mktemp("run")), envs=ENVS, **SMALL)
    return config, run_pipeline(config)


def test_run_folder_describes_itself(small_run):
    config, result = small_run
    run = result.run_dir
    for name in ("config.json", "versions.json", "metrics.json", "report.md", "eval.png", "training.png",
                 "judgments.sqlite", "base/reference.jsonl", "base/sft/final/config.json",
                 "base/sft/metrics.jsonl", "round_1/episodes.jsonl", "round_1/judgments.jsonl",
                 "round_1/filter.json", "round_1/train/metrics.jsonl", "round_1/train/final/config.json"):
        assert (run / name).exists(), f"{name} missing from the run folder"
    assert json.loads((run / "config.json").read_text())["envs"] == list(ENVS)
    versions = json.loads((run / "versions.json").read_text())
    assert {"swirl-rl", "python", "torch", "transformers", "git_commit"} <= set(versions)
    for png in ("eval.png", "training.png"):
        assert (run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    episodes = list(read_episodes(run / "round_1" / "episodes.jsonl"))
    assert len(episodes) == len(ENVS) * config.train_questions * config.samples_per_question
    assert result.policies["round_1"] == str(run / "round_1" / "train" / "final")


def test_report_and_metrics_cover_both_policies_on_held_out_questions(small_run):
    config, result = small_run
    report = (result.run_dir / "report.md").read_text()
    policies = ["base"] + [f"round_{r}" for r in range(1, config.rounds + 1)]
    assert config.rounds == PipelineConfig().rounds == 3  # the main job's default, run here at a tiny size
    assert all(f"| {policy} |" in report for policy in policies)
    assert result.table in report
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert list(metrics["evals"]) == policies
    train_ids = {ep.question_id for r in range(1, config.rounds + 1)
                 for ep in read_episodes(result.run_dir / f"round_{r}" / "episodes.jsonl")}
    for policy in policies:
        for env in ENVS:
            ev = metrics["evals"][policy][env]
            assert ev["split"] == "test" and ev["episodes"] == config.eval_questions
            assert 0.0 <= ev["accuracy"] <= 1.0 and 0.0 <= ev["process_label_accuracy"] <= 1.0
            ids = {ep.question_id for ep in read_episodes(result.run_dir / "eval" / policy / f"{env}.jsonl")}
            assert ids and not ids & train_ids, "evaluation must use held-out questions"
    assert [stats["strategy"] for stats in metrics["rounds"]] == ["none"] * config.rounds
    # Every stage that ran kept its CPU time beside its wall time, and the report shows both.
    assert metrics["cpu_seconds"].keys() == metrics["timings"].keys()
    assert all(cpu > 0 for cpu in metrics["cpu_seconds"].values())
    assert "| stage | seconds | CPU seconds |" in report


def test_each_round_trains_the_policy_of_the_round_before(small_run):
    config, result = small_run
    for r in range(2, config.rounds + 1):
        info = json.loads((result.run_dir / f"round_{r}" / "train" / "run_info.json").read_text())
        assert info["config"]["model"] == result.policies[f"round_{r - 1}"]


def test_rerun_in_the_same_folder_skips_finished_stages(small_run):
    config, first = small_run
    mtime = (first.run_dir / "round_1" / "train" / "final" / "model.safetensors").stat().st_mtime
    again = run_pipeline(config)
    assert set(again.skipped) == set(first.timings) and len(again.skipped) == 1 + 3 * config.rounds + 1 + config.rounds
    assert again.timings == first.timings  # read back from the stages' markers
    assert again.evals == first.evals
    assert (first.run_dir / "round_1" / "train" / "final" / "model.safetensors").stat().st_mtime == mtime


def test_every_config_field_is_a_documented_flag():
    docs = field_docs(PipelineConfig)
    missing = [f.name for f in dataclasses.fields(PipelineConfig) if not docs.get(f.name)]
    assert not missing, f"fields without a docstring (no --help text): {missing}"
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, PipelineConfig)
    ns = parser.parse_args(["--envs", "SwirlGSM8K-v0", "--rounds", "2", "--env-kwargs", '{"SwirlGSM8K-v0": {"max_steps": 4}}',
                            "--swirl.learning-rate", "1e-5", "--sft.lora-r", "8", "--recipe.n-layer", "3"])
    config = from_namespace(PipelineConfig, ns)
    assert config.envs == ("SwirlGSM8K-v0",) and config.rounds == 2 and config.env_kwargs["SwirlGSM8K-v0"] == {"max_steps": 4}
    assert (config.swirl.learning_rate, config.sft.lora_r, config.recipe.n_layer) == (1e-5, 8, 3)
    assert config.sft.learning_rate == PipelineConfig().sft.learning_rate  # the nested default, not the trainer's
    assert from_namespace(PipelineConfig, parser.parse_args([])) == PipelineConfig()


def test_help_reaches_every_trainer_setting_of_both_stages():
    from swirl_agents.cli import build_parser

    help_text = build_parser("pipeline")._subparsers._group_actions[0].choices["pipeline"].format_help()
    for stage in ("sft", "swirl"):
        for f in dataclasses.fields(TrainConfig):
            if f.metadata.get("nested") is not False:
                assert f"--{stage}.{f.name.replace('_', '-')}" in help_text, (stage, f.name)


def test_config_errors_name_the_fix():
    with pytest.raises(ValueError, match="expected registered env ids.*SwirlGSM8K-v0"):
        PipelineConfig(envs=("SwirlGSM8k-v0",))
    with pytest.raises(ValueError, match="strategy: expected one of"):
        PipelineConfig(strategy="process-filter")


@pytest.mark.parametrize("env_id, files, split", [
    ("SwirlGSM8K-v0", ("gsm8k/train.jsonl.gz", "gsm8k/test.jsonl"), "test"),
    ("SwirlHotpot-v0", ("hotpotqa/hotpot_train_subset.json", "hotpotqa/hotpot_dev_distractor_subset.json.gz",
                        "wikipedia/hotpotqa_paragraphs.jsonl.gz"), "dev"),
])
def test_real_data_env_runs_end_to_end(tmp_path, env_id, files, split):
    for name in files:
        require_data(name)
    config = PipelineConfig(run_dir=str(tmp_path), envs=(env_id,), **SMALL)
    result = run_pipeline(config)
    ev = result.evals["round_1"][env_id]
    assert ev["episodes"] == config.eval_questions and ev["split"] == split and ev["judge"] == "reference"
    report = (tmp_path / "report.md").read_text()
    assert "| round_1 |" in report and f"{env_id}: {split}" in report


def _pid_and_square(n: int) -> tuple[int, int]:
    import os

    return os.getpid(), n * n


def test_independent_runs_go_to_other_processes_in_order():
    """``in_processes`` (``swirl compare --jobs``, ``pipeline_bench.py --jobs``) keeps the order of its items."""
    import os

    from swirl_agents.pipeline.stages import in_processes

    here = in_processes(_pid_and_square, [1, 2, 3], 1)
    assert here == [(os.getpid(), 1), (os.getpid(), 4), (os.getpid(), 9)]
    there = in_processes(_pid_and_square, [1, 2, 3], 2)
    assert [sq for _, sq in there] == [1, 4, 9]
    assert os.getpid() not in {pid for pid, _ in there} and len({pid for pid, _ in there}) <= 2


def test_a_run_folder_resumes_whichever_way_its_path_is_spelt(tmp_path, monkeypatch):
    """A folder started as ``runs/x`` resumes when named by its absolute path (or after a move); other settings differ
    and it is refused, naming the setting."""
    import json

    from swirl_agents.configs import to_dict
    from swirl_agents.pipeline.stages import check_run_dir

    monkeypatch.chdir(tmp_path)
    run = tmp_path / "runs" / "x"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(to_dict(PipelineConfig(run_dir="runs/x"))))
    check_run_dir(run, PipelineConfig(run_dir=str(run)))
    with pytest.raises(ValueError, match="train_questions"):
        check_run_dir(run, PipelineConfig(run_dir=str(run), train_questions=7))
