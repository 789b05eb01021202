"""A training run's folder: what it trains on (a digest), its settings, its metrics log, checkpoints written whole,
exact resume and the final model. :func:`swirl_agents.training.train` keeps the loop; this is its state on disk.

Layout of ``output_dir``: ``run_info.json`` (config, data digest, pack statistics, ``finished``), ``metrics.jsonl``
(one record per logged step), ``checkpoints/step_N`` (accelerate state + ``trainer_state.json``) and ``final/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swirl_agents.episodes import Transition
from swirl_agents.jsonl import read_jsonl, write_jsonl
from swirl_agents.training.config import TrainConfig


@dataclass
class TrainResult:
    """What a run produced."""

    output_dir: Path
    final_model_dir: Path | None
    """``output_dir/final``: a Hugging Face model folder (model + tokenizer), ``None`` if not saved."""
    steps: int
    metrics: list[dict[str, float]] = field(default_factory=list)
    """Every logged metrics record (also in ``output_dir/metrics.jsonl``)."""
    pack_stats: dict[str, int] = field(default_factory=dict)
    process_index: int = 0
    num_processes: int = 1


def data_digest(transitions: Sequence[Transition]) -> str:
    """A short hash of what a run trains on (episode ids, steps, rewards): a re-run on other data is refused."""
    h = hashlib.sha256()
    for t in transitions:
        h.update(f"{t.episode_id}\x1f{t.step_index}\x1f{t.reward!r}\x1e".encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:16]


_RUN_SETTINGS_IGNORED = ("progress", "print_metrics", "resume_from", "report_to", "log_every", "save_every")
"""Settings that do not change what a run computes: a finished run is reused whatever they are."""


def _finished_run(out: Path, config: TrainConfig, digest: str, acc: Any) -> TrainResult | None:
    """The result of a finished run in ``out`` with the same config and data; an error if they differ."""
    info_path = out / "run_info.json"
    if not info_path.exists():
        return None
    info = json.loads(info_path.read_text())
    if not info.get("finished"):
        return None
    old = {k: v for k, v in info.get("config", {}).items() if k not in _RUN_SETTINGS_IGNORED}
    new = {k: v for k, v in json.loads(json.dumps(config.to_dict())).items() if k not in _RUN_SETTINGS_IGNORED}
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if changed or info.get("data_digest") != digest:
        what = f"settings {changed}" if changed else "training data"
        raise ValueError(f"{out} holds a finished run with other {what}; use a new --output-dir, or delete {out} to "
                         "train again")
    metrics = list(read_jsonl(out / "metrics.jsonl", dict, "metrics")) if (out / "metrics.jsonl").exists() else []
    final = out / "final" if (out / "final").exists() else None
    return TrainResult(out, final, int(info["steps"]), metrics, info.get("pack_stats", {}), acc.process_index,
                       acc.num_processes)


def _mark_finished(out: Path, steps: int) -> None:
    info = json.loads((out / "run_info.json").read_text())
    info.update(finished=True, steps=steps)
    _write_json_atomic(out / "run_info.json", info)


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _trim_metrics(path: Path, step: int) -> None:
    """Keep the logged records up to the resumed ``step`` (none when starting over), so no step is logged twice."""
    if not path.exists():
        return
    if step == 0:
        path.unlink()
        return
    write_jsonl(path, [r for r in read_jsonl(path, dict, "metrics", skip_torn_tail=True) if r.get("step", 0) <= step])


def _checkpoints(out: Path) -> Path:
    return out / "checkpoints"


def _save_checkpoint(acc: Any, out: Path, step: int, n_batches: int) -> None:
    """Model, optimizer, scheduler and every RNG (accelerate), plus the step: the data position is a function of it.

    Written into ``step_N.tmp`` and renamed when complete, ``trainer_state.json`` last: a checkpoint
    folder without its ``.tmp`` suffix is whole.
    """
    path = _checkpoints(out) / f"step_{step:08d}"
    tmp = path.with_name(path.name + ".tmp")
    if acc.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    acc.wait_for_everyone()
    acc.save_state(str(tmp))
    acc.wait_for_everyone()
    if acc.is_main_process:
        state = {"step": step, "micro_batches": n_batches, "num_processes": acc.num_processes}
        _write_json_atomic(tmp / "trainer_state.json", state)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    acc.wait_for_everyone()


def _resume(acc: Any, config: TrainConfig, n_batches: int) -> int:
    """Load the checkpoint named by ``resume_from`` (``latest``: the newest intact one); the step to continue from."""
    if config.resume_from in ("", "none"):
        return 0
    if config.resume_from == "latest":
        candidates = sorted((p for p in _checkpoints(Path(config.output_dir)).glob("step_*") if p.suffix != ".tmp"),
                            reverse=True)
    else:
        candidates = [Path(config.resume_from)]
        if not (candidates[0] / "trainer_state.json").exists():
            raise FileNotFoundError(f"expected a checkpoint folder with trainer_state.json, actual {candidates[0]}: "
                                    f"use one of {_checkpoints(Path(config.output_dir))}/step_*, or 'latest'")
    for path in candidates:
        try:
            state = json.loads((path / "trainer_state.json").read_text())
            step = int(state["step"])
            acc.load_state(str(path))
        except (OSError, ValueError, KeyError, RuntimeError) as e:  # a torn checkpoint: fall back to the one before
            if config.resume_from != "latest":
                raise
            warnings.warn(f"checkpoint {path} is not intact ({type(e).__name__}: {e}); trying the one before",
                          stacklevel=3)
            continue
        if (state.get("micro_batches"), state.get("num_processes")) != (n_batches, acc.num_processes):
            warnings.warn(f"resuming {path} with {n_batches} micro-batches on {acc.num_processes} processes, saved "
                          f"with {state.get('micro_batches')} on {state.get('num_processes')}: the data order will "
                          "differ from an uninterrupted run", stacklevel=3)
        return step
    return 0


def _log(acc: Any, out: Path, step: int, metrics: dict[str, float], config: TrainConfig) -> dict[str, float]:
    record = {"step": step, **{k: float(v) for k, v in metrics.items()}}
    if config.report_to:
        acc.log({k: v for k, v in record.items() if k != "step"}, step=step)
    if acc.is_main_process:
        with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if config.print_metrics:
            print(f"[swirl.train] step {step} loss={record['losses/total']:.4g} lr={record['charts/lr']:.3g} "
                  f"reward={record['charts/reward_mean']:.3g} tok/s={record['charts/tokens_per_s']:.0f}", flush=True)
    return record


def _write_run_info(out: Path, config: TrainConfig, stats: dict[str, int], total: int, digest: str) -> None:
    from swirl_agents.runinfo import versions

    out.mkdir(parents=True, exist_ok=True)
    info = {"config": json.loads(json.dumps(config.to_dict())), "steps": total, "pack_stats": stats,
            "data_digest": digest, "finished": False, "versions": versions()}
    _write_json_atomic(out / "run_info.json", info)


def _save_final(acc: Any, config: TrainConfig, model: Any, tokenizer: Any) -> Path:
    """Save model + tokenizer as a Hugging Face folder; LoRA adapters are saved too, then merged."""
    path = Path(config.output_dir) / "final"
    acc.wait_for_everyone()
    model = acc.unwrap_model(model)
    if config.lora_r:
        model.save_pretrained(str(Path(config.output_dir) / "adapter"), is_main_process=acc.is_main_process)
        model = model.merge_and_unload()
    if acc.is_main_process:
        model.save_pretrained(str(path))
        tokenizer.save_pretrained(str(path))
    return path
