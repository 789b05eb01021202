"""A new user's first hour: ordinary mistakes give messages, runs resume, reports tell the truth, episodes can be read.

Every test drives the real command line (``swirl_agents.cli.main``, and real subprocesses where a
signal or a fresh interpreter matters) on real components and real data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html.parser
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import pytest

import swirl_env  # noqa: F401  (registers the env ids)
from swirl_agents.agents.factory import make_agent
from swirl_agents.cli import main
from swirl_agents.episodes import Fault, faults_path, read_episodes
from swirl_agents.jsonl import write_jsonl
from swirl_agents.judges import judge_episodes, make_judge, read_judgments, write_judgments
from swirl_agents.pipeline.report import (arms_figure, binomial_se, eval_figure, training_figure, trials,
                                          write_report)
from swirl_agents.rollout import generate_episodes
from swirl_agents.show import show
from swirl_env.data import paths
from tests.conftest import require_data

ROOT = Path(__file__).resolve().parents[1]
HOTPOT = ("hotpotqa/hotpot_dev_distractor_subset.json.gz", "wikipedia/hotpotqa_paragraphs.jsonl.gz")


def swirl(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run ``swirl ARGV`` in this process: (exit code, stdout, stderr); argparse's own exits count as exit codes."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_paragraph_error(code: int, err: str, *needles: str) -> None:
    """A non-zero exit, a message on stderr with no traceback and no blank line inside, naming ``needles``."""
    message = err.strip()
    assert code not in (0, None), f"expected a non-zero exit code, actual {code}; stderr: {err}"
    assert message, "expected a message on stderr, actual nothing"
    assert "Traceback" not in err, f"expected a message, actual a traceback:\n{err}"
    assert "\n\n" not in message, f"expected one paragraph, actual several:\n{err}"
    for needle in needles:
        assert needle in message, f"expected the message to name {needle!r}, actual:\n{err}"


def run_folder_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --- errors, not tracebacks -----------------------------------------------------------------------------------


@pytest.fixture
def broken_episodes(tmp_path) -> Path:
    """A real episode file (reference agent on the built-in world) whose second line is cut in the middle."""
    env = gym.make("SwirlSynthQA-v0")
    good = tmp_path / "good" / "episodes.jsonl"
    generate_episodes(env, make_agent("reference", env), out=good, num_questions=3, progress=False)
    lines = good.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1][: len(lines[1]) // 2]
    broken = tmp_path / "bad" / "episodes.jsonl"
    broken.parent.mkdir()
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return broken


MISTAKES = {
    "unknown env id (generate)": (["generate", "--env", "SwirlHotpot-v9", "--run-dir", "run"], ["SwirlHotpot", "v0"]),
    "unknown env id (evaluate)": (["evaluate", "--env", "Nope-v0", "--run-dir", "run"], ["Nope-v0", "SwirlSynthQA-v0"]),
    "unknown env id (pipeline)": (["pipeline", "--envs", "Nope-v0", "--run-dir", "run"], ["Nope-v0", "SwirlHotpot-v0"]),
    "missing model (evaluate)": (["evaluate", "--agent", "runs/nowhere/final", "--run-dir", "run"],
                                 ["runs/nowhere/final"]),
    "missing model (train)": (["train", "--model", "./nope", "--transitions", "t.jsonl", "--output-dir", "run"],
                              ["./nope"]),
    "not a number": (["generate", "--samples", "abc", "--run-dir", "run"], ["--samples", "'abc'"]),
    "not JSON": (["generate", "--env-kwargs", "{bad", "--run-dir", "run"], ["--env-kwargs", "JSON"]),
    "unknown strategy (filter)": (["filter", "--strategy", "best"], ["'best'", "process"]),
    "unknown strategy (pipeline)": (["pipeline", "--strategy", "best", "--run-dir", "run"], ["'best'", "process"]),
    "unknown show format": (["show", "--format", "pdf"], ["'pdf'", "html"]),
    "missing episode file": (["show", "--episodes", "run/episodes.jsonl"], ["run/episodes.jsonl"]),
}


@pytest.mark.parametrize("argv, needles", MISTAKES.values(), ids=MISTAKES.keys())
def test_an_ordinary_mistake_gives_one_paragraph_and_leaves_nothing_behind(argv, needles, tmp_path, monkeypatch,
                                                                           capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = swirl(argv, capsys)
    assert_one_paragraph_error(code, err, *needles)
    assert code == 2, f"expected exit code 2 (a usage or input error), actual {code}"
    assert run_folder_files(tmp_path) == [], "a command that fails validation must leave no run folder behind"


def test_a_malformed_episode_file_is_named_with_its_line(broken_episodes, capsys):
    code, _, err = swirl(["judge", "--episodes", str(broken_episodes)], capsys)
    assert_one_paragraph_error(code, err, f"{broken_episodes}:2")
    assert run_folder_files(broken_episodes.parent) == ["episodes.jsonl"], "nothing is written beside a bad file"


def test_a_missing_model_fails_at_once_without_the_network(tmp_path, monkeypatch, capsys):
    """No hub lookup for a path that does not exist: no socket is opened and no weights are loaded (no
    ``HF_HUB_OFFLINE`` needed)."""
    import transformers

    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:2] or kwargs)
        raise OSError("the test forbids network access")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", refuse)
    monkeypatch.chdir(tmp_path)
    for argv in (["evaluate", "--agent", "runs/nowhere/final", "--run-dir", "run"],
                 ["train", "--model", "./nope", "--transitions", "t.jsonl", "--output-dir", "out"],
                 ["generate", "--agent", "transformers:./nope", "--run-dir", "run"]):
        code, _, err = swirl(argv, capsys)
        assert_one_paragraph_error(code, err, "does not exist")
        assert attempts == [], f"swirl {argv[0]} tried the network or loaded weights: {attempts}"
    assert run_folder_files(tmp_path) == []


def test_evaluate_names_its_own_flag_for_an_unknown_env(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _, _, err = swirl(["evaluate", "--env", "Nope-v0", "--run-dir", "run"], capsys)
    assert "PipelineConfig" not in err and "--env" in err, err


def cli_process(args: list[str], cwd: Path, **kwargs) -> subprocess.Popen:
    """``swirl ARGS`` in a new interpreter on this checkout, SIGINT delivered as in a terminal."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SWIRL_DATA_DIR": str(paths.data_dir().resolve())}
    return subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kwargs)


def test_a_real_process_gives_the_same_message_and_no_folder(tmp_path):
    proc = cli_process(["-m", "swirl_agents.cli", "generate", "--env", "SwirlHotpot-v9", "--run-dir", "run"], tmp_path)
    out, err = proc.communicate(timeout=120)
    assert_one_paragraph_error(proc.returncode, err, "SwirlHotpot")
    assert proc.returncode == 2 and run_folder_files(tmp_path) == []


PAUSE_AFTER = 20
"""Episodes written before the interrupted run pauses for its Ctrl-C."""

PAUSING_GENERATE = textwrap.dedent(f"""
    import sys, time
    from pathlib import Path
    from swirl_agents import episodes
    from swirl_agents.cli import main

    write = episodes.EpisodeWriter.write
    def write_then_pause(self, episode):
        written = write(self, episode)
        if len(self.done) == {PAUSE_AFTER}:
            Path("paused").touch()
            time.sleep(300)  # Ctrl-C arrives here, midway through the run
        return written
    episodes.EpisodeWriter.write = write_then_pause
    sys.exit(main(sys.argv[1:]))
""")


def test_ctrl_c_in_generate_exits_130_and_rerunning_resumes_to_the_same_episodes(tmp_path, capsys):
    args = ["generate", "--env", "SwirlSynthQA-v0", "--agent", "reference-noisy", "--num-questions", "30",
            "--samples", "2", "--batch-size", "8", "--no-progress"]
    proc = cli_process(["-c", PAUSING_GENERATE, *args, "--run-dir", "run"], tmp_path)
    try:
        for _ in range(6000):  # waits for the pause, not for a time: the bound only stops a hung test
            if (tmp_path / "paused").exists():
                break
            assert proc.poll() is None, f"generate ended before it paused: {proc.communicate()}"
            try:
                proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, f"expected exit code 130 after Ctrl-C, actual {proc.returncode}: {err}"
    assert "Traceback" not in err and err.strip().count("\n") == 0, f"expected one line, actual:\n{err}"
    assert "interrupted" in err and "run the same command again" in err
    assert len(list(read_episodes(tmp_path / "run" / "episodes.jsonl"))) == PAUSE_AFTER

    code, out, _ = swirl([*args, "--run-dir", str(tmp_path / "run")], capsys)
    assert code == 0 and f"episodes skipped {PAUSE_AFTER:>13}" in out, out
    code, _, _ = swirl([*args, "--run-dir", str(tmp_path / "whole")], capsys)
    assert code == 0
    resumed, whole = (episode_records(tmp_path / name / "episodes.jsonl") for name in ("run", "whole"))
    assert len(whole) == 60 and resumed == whole, "a resumed run must end with the episodes of an uninterrupted one"


def episode_records(path: Path) -> dict[str, dict]:
    """Episodes by id, without wall-clock fields (the one thing two identical runs do not share)."""
    out = {}
    for ep in read_episodes(path):
        record = dataclasses.replace(ep, seconds=0.0, created=0.0,
                                     steps=tuple(dataclasses.replace(s, seconds=0.0) for s in ep.steps)).to_dict()
        out[ep.episode_id] = record
    return out


# --- runs that resume, reports that cannot lie ----------------------------------------------------------------

TINY_PIPELINE = [
    "pipeline", "--envs", "SwirlSynthMath-v0", "--warm-start-questions", "12", "--recipe.vocab-size", "420",
    "--recipe.n-embd", "48", "--recipe.n-head", "6", "--recipe.copy-heads", "1", "--recipe.max-positions", "4096",
    "--sft.max-steps", "6", "--sft.save-every", "2", "--sft.log-every", "1", "--train-questions", "3",
    "--samples-per-question", "2", "--strategy", "none", "--rounds", "1", "--swirl.max-steps", "2",
    "--swirl.log-every", "1",
    "--eval-questions", "3", "--max-new-tokens", "12", "--batch-size", "8", "--threads", "1", "--no-progress",
]
"""A whole pipeline in seconds: a tiny model, six warm-start steps (a checkpoint every two), one short SWiRL round."""

INTERRUPT_AT_CALL = 5
"""The warm start's optimizer step that a Ctrl-C interrupts (after the checkpoints of steps 2 and 4)."""


@pytest.fixture(scope="module")
def pipeline_runs(tmp_path_factory):
    """An uninterrupted tiny pipeline run, and the same run interrupted during its warm start and then resumed."""
    import swirl_agents.training.trainer as trainer

    whole, resumed = tmp_path_factory.mktemp("whole"), tmp_path_factory.mktemp("resumed")
    assert main([*TINY_PIPELINE, "--run-dir", str(whole)]) == 0
    calls = []
    real_step = trainer.optimize_step

    def interrupted_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == INTERRUPT_AT_CALL:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer, "optimize_step", interrupted_step)
        code = main([*TINY_PIPELINE, "--run-dir", str(resumed)])
    state = {"code": code, "checkpoints": sorted(p.name for p in (resumed / "base/sft/checkpoints").iterdir()),
             "final_existed": (resumed / "base/sft/final").exists()}
    assert main([*TINY_PIPELINE, "--run-dir", str(resumed)]) == 0
    return whole, resumed, state


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def test_an_interrupted_warm_start_resumes_to_the_uninterrupted_result(pipeline_runs):
    whole, resumed, state = pipeline_runs
    assert state["code"] == 130, "Ctrl-C during the pipeline exits with 130"
    assert state["checkpoints"] == ["step_00000002", "step_00000004"] and not state["final_existed"], state
    for model in ("base/sft/final", "round_1/train/final"):
        a, b = weights(whole / model), weights(resumed / model)
        assert a.keys() == b.keys()
        diff = max(float((a[k] - b[k]).abs().max()) for k in a)
        assert diff <= 1e-6, f"{model}: resumed weights differ from the uninterrupted run's by {diff}"
    evals = [json.loads((run / "metrics.json").read_text().replace(str(run), "RUN"))["evals"]
             for run in (whole, resumed)]
    assert evals[0] == evals[1]
    for policy in ("base", "round_1"):
        actions = [[s.action for ep in read_episodes(run / f"eval/{policy}/SwirlSynthMath-v0.jsonl") for s in ep.steps]
                   for run in (whole, resumed)]
        assert actions[0] == actions[1] and actions[0], f"{policy} writes other steps after the resume"
    logged = [r["step"] for r in map(json.loads, (resumed / "base/sft/metrics.jsonl").read_text().splitlines())]
    assert logged == [1, 2, 3, 4, 5, 6], "each warm-start step is logged once across the interruption"


def _digests(run: Path) -> dict[str, str]:
    return {name: hashlib.sha256((run / name).read_bytes()).hexdigest()
            for name in ("config.json", "metrics.json", "report.md", "eval.png", "training.png")}


def test_a_changed_setting_is_refused_by_name_and_nothing_is_rewritten(pipeline_runs, capsys):
    whole, _, _ = pipeline_runs
    before = _digests(whole)
    code, _, err = swirl([*TINY_PIPELINE, "--run-dir", str(whole), "--eval-questions", "4"], capsys)
    assert_one_paragraph_error(code, err, "eval_questions", "3 -> 4", "--run-dir")
    code, _, err = swirl([*TINY_PIPELINE, "--run-dir", str(whole), "--sft.learning-rate", "0.001"], capsys)
    assert_one_paragraph_error(code, err, "sft")
    assert _digests(whole) == before, "a refused run must not rewrite its config, metrics or report"


def test_a_changed_nested_setting_is_named(pipeline_runs, capsys):
    whole, _, _ = pipeline_runs
    _, _, err = swirl([*TINY_PIPELINE, "--run-dir", str(whole), "--sft.learning-rate", "0.001"], capsys)
    assert "sft.learning_rate" in err and "0.001" in err, err


def test_the_report_shows_training_stages_apart_and_evaluations_with_error_bars(pipeline_runs):
    whole, _, _ = pipeline_runs
    metrics = json.loads((whole / "metrics.json").read_text())
    warm = [json.loads(line) for line in (whole / "base/sft/metrics.jsonl").read_text().splitlines()]
    swirl_round = [json.loads(line) for line in (whole / "round_1/train/metrics.jsonl").read_text().splitlines()]
    fig = training_figure(warm, {"round_1": swirl_round}, metrics["evals"])
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert any("warm start" in t for t in titles) and any("SWiRL" in t for t in titles), titles
    assert not any("reward" in t for t in titles), "a filtered round's reward is constant: it says nothing"
    swirl_axes = [ax for ax in fig.axes if "SWiRL" in ax.get_title(loc="left")]
    (loss_line,) = swirl_axes[0].get_lines()
    assert list(loss_line.get_xdata()) == [r["step"] for r in swirl_round], "SWiRL steps on their own axis"
    assert list(loss_line.get_ydata()) == [r["losses/total"] for r in swirl_round]
    held_out = fig.axes[-1]
    assert "held-out" in held_out.get_title(loc="left") and [t.get_text() for t in held_out.get_xticklabels()] == [
        "base", "round_1"]
    report = (whole / "report.md").read_text()
    assert "±1 binomial standard error" in report and "SwirlSynthMath-v0: 3" in report


def test_evaluation_bars_carry_the_binomial_standard_error():
    evals = {"base": {"E": {"accuracy": 0.3, "process_label_accuracy": 0.6, "episodes": 200, "mean_steps": 2.0}},
             "round_1": {"E": {"accuracy": 0.5, "process_label_accuracy": 0.8, "episodes": 200, "mean_steps": 2.0}}}
    fig = eval_figure(evals)
    accuracy_axes = fig.axes[0]
    errors = [seg[1][1] - seg[0][1] for c in accuracy_axes.containers if hasattr(c, "errorbar") and c.errorbar
              for seg in c.errorbar.lines[2][0].get_segments()]
    assert sorted(round(e / 2, 6) for e in errors) == sorted(round(binomial_se(p, 200), 6) for p in (0.3, 0.5))
    assert trials(evals["base"]["E"], "process_label_accuracy") == 400  # steps, not episodes


def test_several_seeds_are_points_with_mean_and_std():
    results = {"base": {"SynthMath": [0.31, 0.42, 0.53], "SynthQA": [0.14, 0.15]},
               "SWiRL": {"SynthMath": [0.62, 0.67, 0.72], "SynthQA": [0.16, 0.18]}}
    fig = arms_figure(results)
    math_axes = next(ax for ax in fig.axes if ax.get_title() == "SynthMath")
    points = sorted(float(y) for coll in math_axes.collections if len(coll.get_offsets()) == 3
                    for _, y in coll.get_offsets())
    assert points == sorted(results["base"]["SynthMath"] + results["SWiRL"]["SynthMath"])
    means = sorted(float(line.get_ydata()[0]) for line in math_axes.get_lines() if line.get_marker() == "s")
    assert means == pytest.approx([0.42, 0.67])
    labels = [t.get_text() for t in math_axes.texts]
    assert "0.420 ± 0.110\n(3 seeds)" in labels and "0.670 ± 0.050\n(3 seeds)" in labels, labels
    with pytest.raises(ValueError, match="expected results"):
        arms_figure({"base": {}})


def test_a_round_that_trained_nothing_is_said_in_the_report(tmp_path):
    evals = {p: {"E": {"accuracy": 0.2, "process_label_accuracy": 0.5, "answered": 1.0, "malformed_rate": 0.0,
                       "episodes": 10, "mean_steps": 2.0, "split": "test"}} for p in ("base", "round_1")}
    rounds = [{"strategy": "process", "episodes": 16, "episodes_kept": 0, "transitions_kept": 0, "per_env": {}}]
    write_report(tmp_path, {"evals": evals, "rounds": rounds, "policies": {"base": "b", "round_1": "b"}})
    report = (tmp_path / "report.md").read_text()
    assert "Round 1 did not train" in report and "previous policy unchanged" in report
    for png in ("eval.png", "training.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- looking at episodes ----------------------------------------------------------------------------------------

HOSTILE = ("<script>alert('x')</script> \x1b[2J\x1b[31mRED\x1b[0m over\rwritten \u202eevil\u202c ```\n# heading"
           " | cell | <result>forged</result> </pre>")


class Hostile:
    """Writes hostile text in its steps, then searches and answers like a careless model."""

    name = "hostile"

    def act(self, observation: str) -> str:
        if "<search_query>" in observation.rsplit("Question: ", 1)[1]:
            return f"{HOSTILE} <answer>{HOSTILE[:40]}</answer>"
        return f"{HOSTILE} <search_query>Danny Glover</search_query>"


@pytest.fixture(scope="module")
def hotpot_run(tmp_path_factory):
    """Real HotpotQA dev episodes: the noisy reference agent on 4 questions, judged, and one hostile agent episode."""
    for name in HOTPOT:
        require_data(name)
    folder = tmp_path_factory.mktemp("hotpot")
    env = gym.make("SwirlHotpot-v0")
    path = folder / "episodes.jsonl"
    generate_episodes(env, make_agent("reference-noisy", env, seed=1), out=path, num_questions=4, progress=False)
    generate_episodes(env, Hostile(), out=path, question_ids=[env.unwrapped.questions[7].id], progress=False)
    episodes = list(read_episodes(path))
    write_judgments(folder / "judgments.jsonl", judge_episodes(episodes, make_judge("reference", envs=[env])))
    return path, episodes


def test_show_text_numbers_every_step_with_result_and_judgment(hotpot_run):
    path, episodes = hotpot_run
    judgments = read_judgments(path.with_name("judgments.jsonl"))
    text = show(path, first=4, width=90, max_chars=300)
    assert text.count("=== episode ") == 4
    for ep in episodes[:4]:
        assert f"=== episode {ep.episode_id} " in text and f"gold      {ep.gold_answers[0]}" in text
        for i, (step, verdict) in enumerate(zip(ep.steps, judgments[ep.episode_id]), 1):
            assert f"[step {i}/{len(ep.steps)}  {step.tool or 'malformed'}  judged {verdict.label}]" in text
            if step.result and len(step.result) > 300:
                assert f"[{len(step.result) - 300:,} more characters not shown" in text
            assert verdict.rationale[:40] in " ".join(text.split())
    assert all(len(line) <= 90 for line in text.splitlines()), "text is wrapped to the width"
    last_words = episodes[0].steps[0].result.split()[-3:]
    assert " ".join(last_words) in " ".join(show(path, max_chars=0, width=90).split()), "--max-chars 0 shows all"


def test_show_by_id_with_faults_and_without_judgments(hotpot_run, tmp_path):
    path, episodes = hotpot_run
    copy = tmp_path / "episodes.jsonl"
    copy.write_bytes(path.read_bytes())
    wanted = [episodes[2].episode_id, episodes[0].episode_id]
    write_jsonl(faults_path(copy), [dataclasses.asdict(Fault(wanted[0], 1, "openai:http://x:m", "server error 503"))])
    text = show(copy, episode_ids=wanted)
    assert [line.split()[2] for line in text.splitlines() if line.startswith("=== ")] == wanted
    assert "fault     step 2: server error 503" in text and "not judged" in text
    with pytest.raises(KeyError, match="did you mean"):
        show(copy, episode_ids=[episodes[0].episode_id[:-1] + "9"])


HTML_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "small", "p", "section", "dl", "dt",
             "dd", "div", "pre", "b", "details", "summary"}


class Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)

    def handle_data(self, data):
        self.text.append(data)


def test_hostile_text_is_shown_never_interpreted(hotpot_run):
    path, episodes = hotpot_run
    hostile = next(ep.episode_id for ep in episodes if ep.agent == "hostile")
    text = show(path, episode_ids=[hostile])
    controls = [c for c in text if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) < 0xA0 or 0x202A <= ord(c) <= 0x202E]
    assert controls == [], f"control characters reach the terminal: {controls}"
    assert "\\x1b[2J\\x1b[31mRED" in text and "over\\rwritten" in text and "\\u202eevil" in text

    page = show(path, episode_ids=[hostile], fmt="html")
    parser = Tags()
    parser.feed(page)
    assert parser.tags <= HTML_TAGS, f"recorded text made HTML tags: {parser.tags - HTML_TAGS}"
    shown = "".join(parser.text)
    assert "<script>alert('x')</script>" in shown and "</pre>" in shown and "\u202e" not in page
    assert "Content-Security-Policy" in page and "http" not in page.split("<body>")[0].replace("http-equiv", "")

    markdown = show(path, episode_ids=[hostile], fmt="markdown")
    assert "````text\n" in markdown, "a fence longer than the ``` inside the step"
    assert "\x1b" not in markdown and "<script>" not in markdown.split("````text")[0]


def test_show_command_writes_markdown_and_html_files(hotpot_run, tmp_path, capsys):
    path, episodes = hotpot_run
    for fmt, suffix in (("markdown", "md"), ("html", "html")):
        out = tmp_path / f"episodes.{suffix}"
        code, stdout, _ = swirl(["show", "--episodes", str(path), "--first", "0", "--format", fmt, "--out", str(out)],
                                capsys)
        assert code == 0 and stdout.strip() == f"{fmt} -> {out}"
        written = out.read_text(encoding="utf-8")
        assert all(ep.episode_id in written for ep in episodes)
    code, stdout, _ = swirl(["show", "--episodes", str(path), "--first", "2", "--width", "80"], capsys)
    assert code == 0 and stdout.count("=== episode ") == 2
