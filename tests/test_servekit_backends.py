"""Lesson 02's engines: extractive summarizer, Apertium, and the seq2seq path CI cannot download.

The ``transformers`` backend serves hub models (opus-mt, distilbart) that need internet. Its code
runs here on a tiny T5 with random weights and a word-level tokenizer, both built offline in a
temporary folder: that proves loading, tokenizing, ``generate`` and decoding work with the
pinned transformers, not that any hub model translates well.
"""

from __future__ import annotations

import asyncio
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from servekit import EngineFailed, load_summarizer, load_translator, resolve_model, split_sentences
from servekit.backends import ApertiumTranslator, Seq2SeqSummarizer, Seq2SeqTranslator
from servekit.models import ResolvedModel

TEXT = (
    "The city library opened a new reading room on Monday. The room has two hundred seats. "
    "Children can borrow books there without a library card. Last year more than ten thousand "
    "people visited the old building."
)
WORDS = "the city library opened a new room la biblioteca abrió una sala nueva".split()


def test_split_sentences_keeps_sentences_with_a_letter():
    assert split_sentences("One. Two! 3 pm is fine? ... Four") == [
        "One.",
        "Two!",
        "3 pm is fine? ...",
        "Four",
    ]
    assert split_sentences("  ") == [] and split_sentences("... !!! ???") == []


@pytest.fixture(scope="module")
def extractive():
    return load_summarizer(resolve_model("summarization"))


def test_extractive_summary_is_input_sentences_in_order(extractive):
    summary = extractive.summarize(TEXT, 2)
    kept = split_sentences(summary)
    assert len(kept) == 2 and all(s in split_sentences(TEXT) for s in kept)
    assert [TEXT.index(s) for s in kept] == sorted(TEXT.index(s) for s in kept)
    ranked = extractive.rank(TEXT)
    assert [s for s, _ in ranked] == split_sentences(TEXT)
    assert all(-1 <= score <= 1 and round(score, 2) == score for _, score in ranked)


def test_extractive_refuses_text_without_a_sentence(extractive):
    with pytest.raises(ValueError, match="found no sentence"):
        extractive.summarize("... !!! ???")


# --- Apertium ---------------------------------------------------------------------------------

needs_apertium = pytest.mark.skipif(shutil.which("apertium") is None, reason="apertium is not installed")


@needs_apertium
def test_apertium_translates_in_a_thread_under_uvloop():
    """The replica's setup: uvloop, and the blocking subprocess.run in a thread (see the class docs)."""
    uvloop = pytest.importorskip("uvloop")
    engine = load_translator(resolve_model("translation"))
    assert isinstance(engine, ApertiumTranslator)
    spanish = uvloop.run(asyncio.to_thread(engine.translate, "The city library opened a new room."))
    assert spanish.startswith("La biblioteca")


@pytest.mark.parametrize(
    "command, timeout_s, message",
    [
        (["true"], 30.0, "no output"),  # exit 0 and nothing printed, as under uvloop's socket stdin
        (["sh", "-c", "echo broken >&2; exit 3"], 30.0, "exit code 3"),
        (["sleep", "5"], 0.2, "no answer within 0.2 s"),
    ],
)
def test_apertium_failures_are_engine_failures(command, timeout_s, message):
    engine = ApertiumTranslator("eng-spa", timeout_s)
    engine.command = command
    with pytest.raises(EngineFailed, match=message):
        engine.translate("Hello.")


def test_apertium_runs_one_pipeline_at_a_time(tmp_path):
    """Threads of a replica calling at once never overlap (mkdir fails if another call holds it)."""
    engine = ApertiumTranslator("eng-spa")
    mark = tmp_path / "running"
    engine.command = ["sh", "-c", f"mkdir {mark} || exit 7; sleep 0.1; rmdir {mark}; echo ok"]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(engine.translate, ["a.", "b.", "c.", "d."])) == ["ok"] * 4


def test_apertium_gives_up_waiting_for_its_turn():
    engine = ApertiumTranslator("eng-spa", timeout_s=0.1)
    engine.command = ["echo", "never run"]
    with engine._one_at_a_time, pytest.raises(EngineFailed, match="busy for 0.1 s"):
        engine.translate("Hello.")


def test_blank_text_is_the_callers_problem():
    with pytest.raises(ValueError, match="no text"):
        ApertiumTranslator("eng-spa").translate("  \n")


def test_unknown_backends_are_refused():
    odd = ResolvedModel("summarization", "/nowhere", "env", "odd", "quantum")
    with pytest.raises(ValueError, match="unknown summarization backend"):
        load_summarizer(odd)
    with pytest.raises(ValueError, match="unknown translation backend"):
        load_translator(odd)


# --- the transformers (hub model) path, on a tiny model built offline ---------------------------


@pytest.fixture(scope="module")
def tiny_seq2seq(tmp_path_factory) -> str:
    """A 1-layer T5 with random weights and a word-level tokenizer, saved like a hub model. Its
    generation config never ends early and only writes words, so every answer is exactly as long
    as the token budget the engine gives it."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    folder = tmp_path_factory.mktemp("tiny-t5")
    vocab = ["<pad>", "</s>", "<unk>", *WORDS]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    ).save_pretrained(folder)
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=len(vocab), d_model=16, d_ff=32, d_kv=8, num_layers=1, num_decoder_layers=1,
        num_heads=2, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )  # fmt: skip
    model = T5ForConditionalGeneration(config)
    model.generation_config.suppress_tokens = [0, 1, 2]  # no <pad>, </s> or <unk> in the output
    model.save_pretrained(folder)
    return str(folder)


def test_seq2seq_summarizer_generates_text_within_its_token_budget(tiny_seq2seq):
    engine = load_summarizer(ResolvedModel("summarization", tiny_seq2seq, "env", "tiny", "transformers"))
    assert isinstance(engine, Seq2SeqSummarizer)
    summary = engine.summarize("the city library opened a new room", sentences=1)
    assert summary and set(summary.split()) <= set(WORDS)
    assert len(summary.split()) == 60, "60 new tokens per sentence asked for"
    assert engine.summarize("the city library opened a new room", sentences=1) == summary, "deterministic"
    with pytest.raises(ValueError, match="no text"):
        engine.summarize(" ")


def test_seq2seq_translator_generates_and_refuses_an_empty_answer(tiny_seq2seq, monkeypatch):
    engine = load_translator(ResolvedModel("translation", tiny_seq2seq, "env", "tiny", "transformers"))
    assert isinstance(engine, Seq2SeqTranslator)
    assert engine.max_new_tokens == 512, "opus-mt's limit"
    engine.max_new_tokens = 40  # a full 512 takes seconds on this tiny model
    spanish = engine.translate("the city library")
    assert set(spanish.split()) <= set(WORDS) and len(spanish.split()) == 40
    import torch

    eos_only = torch.tensor([[0, 1]])  # decoder start, then end of sequence: nothing to decode
    monkeypatch.setattr(engine.model, "generate", lambda **kwargs: eos_only)
    with pytest.raises(EngineFailed, match="generated no text"):
        engine.translate("the city library")
