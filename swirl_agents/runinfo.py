"""Every run writes its config, the package versions and the git commit beside its results."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from swirl_agents.configs import to_dict


def git_commit(cwd: str | os.PathLike | None = None) -> str:
    """The git commit of the working tree (``-dirty`` when it has changes), or ``unknown``."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=cwd, timeout=5)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=cwd, timeout=5)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    """Versions of swirl, Python and the libraries that shape results."""
    out = {"python": platform.python_version(), "git_commit": git_commit(Path(__file__).resolve().parent)}
    for package in ("swirl-rl", "gymnasium", "torch", "transformers", "accelerate", "sympy", "numpy"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def write_run_info(run_dir: str | os.PathLike, config: Any, name: str = "config.json") -> Path:
    """Write ``config.json`` (or ``name``) and ``versions.json`` into ``run_dir``; return the folder."""
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    payload = to_dict(config) if not isinstance(config, dict) else config
    (run / name).write_text(json.dumps(payload, indent=2) + "\n")
    (run / "versions.json").write_text(json.dumps(versions(), indent=2) + "\n")
    return run
