"""The training loop: parameters move, the signal is right, resume is exact, 2 processes, saved models load."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from swirl_agents.episodes import Transition
from swirl_agents.training import TrainConfig, train
from swirl_agents.training.data import collate, make_batches, pack_transitions
from swirl_agents.training.trainer import optimize_step, policy_logprobs
from swirl_env import context as ctx
from tests.training.conftest import INSTRUCTIONS, episode_transitions, tiny_model

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path, **kw) -> TrainConfig:
    defaults = dict(output_dir=str(tmp_path / "run"), learning_rate=1e-3, max_steps=2, max_tokens_per_batch=2048,
                    save_final=False, print_metrics=False, progress=False)
    return TrainConfig(**{**defaults, **kw})


def _params(model) -> dict[str, torch.Tensor]:
    return {n.replace("base_model.model.", "").replace("base_layer.", ""): p.detach().clone()
            for n, p in model.named_parameters()}


def test_two_steps_change_every_parameter(tmp_path, gsm8k_episodes, tiny_tokenizer):
    model = tiny_model(tiny_tokenizer)
    before = _params(model)
    result = train(_config(tmp_path), gsm8k_episodes, model=model, tokenizer=tiny_tokenizer)
    after = _params(model)
    assert result.steps == 2 and len(result.metrics) == 2
    unchanged = [n for n in before if torch.equal(before[n], after[n])]
    assert not unchanged, f"parameters not trained: {unchanged}"
    lines = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert {"losses/pg", "charts/reward_mean", "charts/tokens_per_s", "charts/action_tokens"} <= set(lines[0])
    assert json.loads((tmp_path / "run/run_info.json").read_text())["config"]["max_steps"] == 2


def test_lora_trains_only_adapters_and_saves_a_merged_model(tmp_path, gsm8k_episodes, tiny_tokenizer):
    from transformers import AutoModelForCausalLM

    model = tiny_model(tiny_tokenizer)
    before = _params(model)
    train(_config(tmp_path, lora_r=4, learning_rate=1e-2), gsm8k_episodes, model=model, tokenizer=tiny_tokenizer)
    after = _params(model)
    adapters = [n for n in after if "lora_" in n]
    assert adapters and all(not torch.equal(after[n], torch.zeros_like(after[n])) for n in adapters if "lora_B" in n)
    assert all(torch.equal(before[n], after[n]) for n in before), "a base weight moved under LoRA"

    model = tiny_model(tiny_tokenizer)
    result = train(_config(tmp_path / "merged", lora_r=4, learning_rate=1e-2, save_final=True, kl_coef=0.1,
                           gradient_checkpointing=True),
                   gsm8k_episodes, model=model, tokenizer=tiny_tokenizer)
    merged = AutoModelForCausalLM.from_pretrained(result.final_model_dir)
    changed = {n for n, p in _params(merged).items() if not torch.equal(p, before[n])}
    assert changed and all(n.endswith("proj.weight") for n in changed)  # attention/MLP projections only
    assert (result.output_dir / "adapter").is_dir() and result.metrics[-1]["losses/kl"] > 0


def _arithmetic(n: int, seed: int, good: bool, reward: float) -> list[Transition]:
    """Two-step episodes "a plus b": GOOD adds and answers the sum; BAD subtracts and answers a guess."""
    rng, out = random.Random(seed), []
    for k in range(n):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        if good:
            steps = [(f"Add them. <math_exp>{a}+{b}</math_exp>", str(a + b)), (f"The sum. <answer>{a + b}</answer>", None)]
        else:
            steps = [(f"Subtract? <math_exp>{a}-{b}</math_exp>", str(a - b)), (f"A guess. <answer>{a}</answer>", None)]
        out += episode_transitions(f"{'good' if good else 'bad'}-{seed}-{k}", f"What is {a} plus {b}?", steps,
                                   [reward, reward], instructions="Use the calculator.")
    return out


def _mean_action_logprob(model, tokenizer, transitions) -> float:
    rows, _ = pack_transitions(tokenizer, transitions, max_len=2048)
    with torch.no_grad():
        logp, action_ids, _ = policy_logprobs(model, collate(rows, tokenizer.pad_token_id))
    mask = action_ids >= 0
    return float(logp[mask].mean())


@pytest.mark.parametrize("bad_reward, baseline, lr", [(None, "none", 3e-3), (-1.0, "none", 2e-3), (0.0, "mean", 2e-3)])
def test_learning_signal_on_held_out_actions(tmp_path, tiny_tokenizer, bad_reward, baseline, lr):
    """Process filter (GOOD only, reward 1, no baseline): held-out GOOD rises and BAD falls relative to it.
    GOOD +1 / BAD -1, or GOOD 1 / BAD 0 with a mean baseline: GOOD rises and BAD falls outright."""
    data = _arithmetic(16, seed=1, good=True, reward=1.0)
    if bad_reward is not None:
        data += _arithmetic(16, seed=2, good=False, reward=bad_reward)
    good, bad = _arithmetic(12, seed=100, good=True, reward=1.0), _arithmetic(12, seed=100, good=False, reward=1.0)
    model = tiny_model(tiny_tokenizer)
    good0, bad0 = _mean_action_logprob(model, tiny_tokenizer, good), _mean_action_logprob(model, tiny_tokenizer, bad)
    train(_config(tmp_path, max_steps=20, baseline=baseline, learning_rate=lr, max_tokens_per_batch=100_000,
                  lr_schedule="constant"), data, model=model, tokenizer=tiny_tokenizer)
    good1, bad1 = _mean_action_logprob(model, tiny_tokenizer, good), _mean_action_logprob(model, tiny_tokenizer, bad)
    assert good1 > good0 + 1.0
    assert (good1 - bad1) > (good0 - bad0) + 1.0
    if bad_reward is not None:
        assert bad1 < bad0 - 1.0


def _run(tmp_path, transitions, tokenizer, **kw):
    model = tiny_model(tokenizer)
    cfg = _config(tmp_path, **{"max_tokens_per_batch": 700, "warmup_steps": 3, **kw})
    train(cfg, transitions, model=model, tokenizer=tokenizer)
    return _params(model)


def _interrupted_at(step, monkeypatch):
    """Make optimizer step ``step`` raise KeyboardInterrupt, as Ctrl-C would."""
    from swirl_agents.training import trainer

    calls, real = [], trainer.optimize_step

    def optimize_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == step:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "optimize_step", optimize_step)
    return lambda: monkeypatch.setattr(trainer, "optimize_step", real)


def test_a_rerun_after_ctrl_c_resumes_exactly_and_logs_each_step_once(tmp_path, gsm8k_episodes, tiny_tokenizer,
                                                                        monkeypatch):
    # Warmup spans the interruption: a resumed run that lost the scheduler's state would use other rates.
    straight = _run(tmp_path / "a", gsm8k_episodes, tiny_tokenizer, max_steps=4, save_every=2, log_every=1)
    restore = _interrupted_at(3, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b", gsm8k_episodes, tiny_tokenizer, max_steps=4, save_every=2, log_every=1)
    restore()
    assert [json.loads(x)["step"] for x in (tmp_path / "b/run/metrics.jsonl").read_text().splitlines()] == [1, 2]
    resumed = _run(tmp_path / "b", gsm8k_episodes, tiny_tokenizer, max_steps=4, save_every=2, log_every=1)
    for name, p in straight.items():
        assert torch.allclose(p, resumed[name], atol=1e-6, rtol=0), name
    steps = [json.loads(x)["step"] for x in (tmp_path / "b/run/metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # the resumed log holds each step once
    two_steps = _run(tmp_path / "c", gsm8k_episodes, tiny_tokenizer, max_steps=2)
    assert any(not torch.equal(p, straight[n]) for n, p in two_steps.items())


def test_a_torn_newest_checkpoint_falls_back_to_the_one_before(tmp_path, gsm8k_episodes, tiny_tokenizer, monkeypatch):
    straight = _run(tmp_path / "a", gsm8k_episodes, tiny_tokenizer, max_steps=4, save_every=1)
    restore = _interrupted_at(4, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b", gsm8k_episodes, tiny_tokenizer, max_steps=4, save_every=1)
    restore()
    newest = tmp_path / "b/run/checkpoints/step_00000003"
    (newest / "trainer_state.json").write_text('{"step": ')  # torn by a crash
    with pytest.warns(UserWarning, match="not intact"):
        resumed = _run(tmp_path / "b", gsm8k_episodes, tiny_tokenizer, max_steps=4, save_every=1)
    for name, p in straight.items():
        assert torch.allclose(p, resumed[name], atol=1e-6, rtol=0), name


def test_a_finished_run_is_reused_and_a_changed_one_refused(tmp_path, gsm8k_episodes, tiny_tokenizer):
    first = train(_config(tmp_path), gsm8k_episodes, model=tiny_model(tiny_tokenizer), tokenizer=tiny_tokenizer)
    again = train(_config(tmp_path), gsm8k_episodes, model=tiny_model(tiny_tokenizer), tokenizer=tiny_tokenizer)
    assert again.steps == first.steps and again.metrics == first.metrics
    with pytest.raises(ValueError, match="other settings \\['learning_rate'\\]"):
        train(_config(tmp_path, learning_rate=0.5), gsm8k_episodes, model=tiny_model(tiny_tokenizer),
              tokenizer=tiny_tokenizer)
    with pytest.raises(ValueError, match="other training data"):
        train(_config(tmp_path), gsm8k_episodes[:3], model=tiny_model(tiny_tokenizer), tokenizer=tiny_tokenizer)


@pytest.mark.parametrize("normalize", ["token", "action", "sequence"])
def test_gradient_accumulation_equals_one_big_batch(gsm8k_episodes, tiny_tokenizer, normalize):
    """The loss is normalised by the step's global count, so micro-batching leaves the gradient unchanged."""
    from accelerate import Accelerator

    rows, _ = pack_transitions(tiny_tokenizer, gsm8k_episodes, max_len=2048)
    config = TrainConfig(output_dir="unused", normalize=normalize, max_grad_norm=0.0)

    def sgd_step(groups):  # SGD with lr 1: parameters move by exactly the gradient
        model = tiny_model(tiny_tokenizer)
        micro = [collate([rows[i] for i in g], tiny_tokenizer.pad_token_id) for g in groups]
        optimize_step(Accelerator(cpu=True), model, None, torch.optim.SGD(model.parameters(), lr=1.0), micro, config)
        return _params(model)

    groups = make_batches([len(r) for r in rows], 700)
    assert len(groups) >= 3
    whole, split = sgd_step([list(range(len(rows)))]), sgd_step(groups)
    for name, p in split.items():
        assert torch.allclose(p, whole[name], atol=1e-6, rtol=0), name


def test_two_processes_train_and_save(tmp_path):
    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun (from torch) is not on PATH")
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", str(random.randint(20000, 40000)),
                           str(REPO / "examples/train_tiny.py"), "--output-dir", str(out), "--max-steps", "2",
                           "--episodes", "12"], capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "process 0/2 done" in proc.stdout and "process 1/2 done" in proc.stdout
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out / "final")
    ids = AutoTokenizer.from_pretrained(out / "final")("Question: 2+3?\n\n", return_tensors="pt")["input_ids"]
    assert model.generate(ids, max_new_tokens=3, do_sample=False).shape[1] == ids.shape[1] + 3
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["step"] == 2


def test_final_model_runs_in_the_transformers_agent(tmp_path, gsm8k_episodes, tiny_tokenizer):
    result = train(_config(tmp_path, save_final=True, objective="trajectory"), gsm8k_episodes,
                   model=tiny_model(tiny_tokenizer), tokenizer=tiny_tokenizer)
    hf = pytest.importorskip("swirl_agents.agents.hf")
    agent = hf.TransformersAgent(str(result.final_model_dir), max_new_tokens=4, do_sample=False)
    assert isinstance(agent.act(gsm8k_episodes[0].state), str)


@pytest.mark.parametrize("field, value, message", [
    ("normalize", "tokens", "TrainConfig.normalize: expected one of"),
    ("objective", "ppo", "TrainConfig.objective: expected one of"),
    ("grad_accum_steps", 0, "TrainConfig.grad_accum_steps: expected an integer >= 1, actual 0"),
    ("kl_coef", -1.0, "TrainConfig.kl_coef: expected a value >= 0"),
    ("learning_rate", 0.0, "TrainConfig.learning_rate: expected > 0"),
    ("baseline", "mean", "expected 'none' with objective='sft'"),
])
def test_config_errors_say_what_and_how(field, value, message):
    kw = {"objective": "sft"} if field == "baseline" else {}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(output_dir="x", **{field: value, **kw})


def test_long_episodes_are_split_with_a_warning(tmp_path, gsm8k_episodes, tiny_tokenizer):
    with pytest.warns(UserWarning, match="leading steps cut away"):
        result = train(_config(tmp_path, max_steps=1, max_seq_len=260), gsm8k_episodes,
                       model=tiny_model(tiny_tokenizer), tokenizer=tiny_tokenizer)
    assert result.pack_stats["actions_truncated"] > 0


def test_missing_model_and_bad_resume_path(tmp_path, gsm8k_episodes, tiny_tokenizer):
    with pytest.raises(ValueError, match="TrainConfig.model"):
        train(_config(tmp_path), gsm8k_episodes)
    with pytest.raises(FileNotFoundError, match="trainer_state.json"):
        train(_config(tmp_path, resume_from=str(tmp_path / "nope")), gsm8k_episodes,
              model=tiny_model(tiny_tokenizer), tokenizer=tiny_tokenizer)
    with pytest.raises(ValueError, match="at least one transition"):
        train(_config(tmp_path), [], model=tiny_model(tiny_tokenizer), tokenizer=tiny_tokenizer)


def test_the_padding_mask_warning_is_dropped_and_other_warnings_kept():
    """The trainer passes right-padded rows without a mask on purpose; transformers' warning about it is noise."""
    import logging

    from swirl_agents.training import trainer

    trainer._quiet_padding_warning()
    trainer._quiet_padding_warning()  # idempotent
    log = logging.getLogger("transformers.modeling_utils")
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    log.addHandler(handler)
    try:
        log.warning("We strongly recommend passing in an `attention_mask` since your input_ids may be padded.")
        log.warning("Some other warning")
    finally:
        log.removeHandler(handler)
    assert seen == ["Some other warning"]
    assert sum(isinstance(f, trainer._PaddingWarningFilter) for f in log.filters) == 1


def test_tensorboard_tracker_logs_every_step(tmp_path, gsm8k_episodes, tiny_tokenizer):
    """``report_to=("tensorboard",)``: the event file under ``output_dir/trackers`` holds the same losses as metrics.jsonl."""
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator",
        reason='TensorBoard logging needs pip install tensorboard (the proposed "swirl-rl[track]" extra)')
    result = train(_config(tmp_path, report_to=("tensorboard",)), gsm8k_episodes, model=tiny_model(tiny_tokenizer),
                   tokenizer=tiny_tokenizer)
    events = sorted((tmp_path / "run/trackers").rglob("events.out.tfevents.*"))
    scalars = {}
    for path in events:
        acc = event_accumulator.EventAccumulator(str(path))
        acc.Reload()
        scalars |= {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    assert {"losses/total", "losses/pg", "charts/lr", "charts/reward_mean"} <= set(scalars)
    assert [step for step, _ in scalars["losses/total"]] == [m["step"] for m in result.metrics] == [1, 2]
    assert [v for _, v in scalars["losses/total"]] == pytest.approx([m["losses/total"] for m in result.metrics],
                                                                    rel=1e-6)  # float32 in the event file
