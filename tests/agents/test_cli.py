"""Each `swirl` subcommand has --help from its config and runs on a small setting."""

import json
import subprocess
import sys

import pytest

from swirl_agents.cli import build_parser, main

SUBCOMMANDS = ("generate", "judge", "filter", "train", "evaluate", "pipeline")


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_help_comes_from_the_config(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    flags = [a for a in out.split() if a.startswith("--") and a != "--help"]
    assert len(flags) >= 3
    # Every flag carries its field's docstring, not just a default.
    assert "(default:" in out


def test_installed_console_script():
    result = subprocess.run([sys.executable, "-m", "swirl_agents.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and all(name in result.stdout for name in SUBCOMMANDS)


def test_generate_judge_filter_train_evaluate(tmp_path, tiny_model_dir, capsys):
    run = tmp_path / "gen"
    assert main(["generate", "--env", "SwirlSynthMath-v0", "SwirlSynthQA-v0", "--agent", "reference-noisy",
                 "--num-questions", "6", "--samples", "2", "--run-dir", str(run)]) == 0
    episodes = run / "episodes.jsonl"
    assert len(episodes.read_text().splitlines()) == 24
    assert json.loads((run / "config.json").read_text())["samples"] == 2
    assert "git_commit" in json.loads((run / "versions.json").read_text())

    assert main(["judge", "--episodes", str(episodes)]) == 0
    assert len((run / "judgments.jsonl").read_text().splitlines()) == 24

    assert main(["filter", "--episodes", str(episodes), "--strategy", "process"]) == 0
    stats = json.loads((run / "transitions.stats.json").read_text())
    assert 0 < stats["episodes_kept"] < 24

    out = tmp_path / "train"
    assert main(["train", "--transitions", str(run / "transitions.jsonl"), "--model", str(tiny_model_dir),
                 "--output-dir", str(out), "--max-steps", "2", "--no-print-metrics"]) == 0
    assert (out / "final" / "config.json").exists()

    ev = tmp_path / "eval"
    assert main(["evaluate", "--env", "SwirlSynthMath-v0", "--agent", str(out / "final"), "--num-questions", "4",
                 "--max-new-tokens", "24", "--run-dir", str(ev)]) == 0
    metrics = json.loads((ev / "metrics.json").read_text())
    assert metrics[0]["episodes"] == 4 and 0.0 <= metrics[0]["accuracy"] <= 1.0
    assert "| SwirlSynthMath-v0 | test | 4 |" in capsys.readouterr().out


def test_bad_flag_value_is_a_clear_error(tmp_path, capsys):
    code = main(["filter", "--episodes", str(tmp_path / "x.jsonl"), "--strategy", "procces"])
    assert code != 0
