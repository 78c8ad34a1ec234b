"""The summarizer and translator engines behind lesson 02's deployments.

``load_summarizer(model)`` and ``load_translator(model)`` take what ``resolve_model`` returned and
give an engine whose ``summarize(text, sentences)`` / ``translate(text)`` are plain, blocking calls;
the lesson's deployments wrap them with Serve code only. Two error types, so that a deployment can
answer with the right status:

* ``ValueError``: the engine cannot take this text (the client's input; e.g. no sentence in it);
* :class:`EngineFailed`: the engine itself broke (a crash, a timeout, an empty answer).

Backends (``ResolvedModel.backend``):

* ``extractive`` summarizer: the packaged all-MiniLM-L6-v2 encoder embeds each sentence (mean of
  the token vectors, padding ignored, scaled to length 1); the summary is the sentences closest to
  the centroid of all of them, kept in their original order.
* ``apertium`` translator: runs the ``apertium`` program once per call, with a timeout.
* ``transformers`` (both tasks, hub models such as opus-mt or distilbart): ``AutoModelForSeq2SeqLM``
  and ``generate`` (transformers 5 removed the summarization and translation pipelines). CI has no
  internet: tests/test_servekit_backends.py runs this code on a tiny seq2seq model built offline
  with random weights, which proves the code path, not the quality of any hub model.
"""

from __future__ import annotations

import re
import subprocess
import threading

from servekit.models import ResolvedModel

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


class EngineFailed(RuntimeError):
    """The engine broke on a text it accepted: not the caller's fault (a deployment answers 502)."""


def split_sentences(text: str) -> list[str]:
    """Sentences with at least one letter; a simple rule: a sentence ends at . ! or ? before a capital."""
    return [s.strip() for s in SENTENCE_END.split(text.strip()) if any(ch.isalpha() for ch in s)]


def _seq2seq(location: str):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    return AutoTokenizer.from_pretrained(location), AutoModelForSeq2SeqLM.from_pretrained(location).eval()


def _generate(tokenizer, model, text: str, max_new_tokens: int) -> str:
    import torch

    batch = tokenizer(text, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        ids = model.generate(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            max_new_tokens=max_new_tokens,
            num_beams=4,
        )
    out = tokenizer.decode(ids[0], skip_special_tokens=True).strip()
    if not out:
        raise EngineFailed("the model generated no text")
    return out


class ExtractiveSummarizer:
    backend = "extractive"

    def __init__(self, location: str):
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(location)
        self.model = AutoModel.from_pretrained(location).eval()

    def _sentences(self, text: str) -> list[str]:
        found = split_sentences(text)
        if not found:
            raise ValueError("found no sentence to summarize")
        return found

    def _scores(self, sentences: list[str]) -> list[float]:
        import torch

        batch = self.tokenizer(sentences, padding=True, truncation=True, max_length=256, return_tensors="pt")
        with torch.inference_mode():
            tokens = self.model(**batch).last_hidden_state  # (sentences, tokens, 384)
        mask = batch["attention_mask"].unsqueeze(-1).to(tokens.dtype)
        vectors = torch.nn.functional.normalize((tokens * mask).sum(1) / mask.sum(1), dim=1)
        centroid = torch.nn.functional.normalize(vectors.mean(0), dim=0)
        return (vectors @ centroid).tolist()

    def rank(self, text: str) -> list[tuple[str, float]]:
        """Every sentence with its score, rounded to 2 decimals (the last digits differ between CPUs)."""
        sentences = self._sentences(text)
        return [(s, round(score, 2)) for s, score in zip(sentences, self._scores(sentences), strict=True)]

    def summarize(self, text: str, sentences: int = 2) -> str:
        """The ``sentences`` sentences closest to the text's centroid, in their original order."""
        found = self._sentences(text)
        scores = self._scores(found)
        best = sorted(range(len(found)), key=lambda i: -scores[i])[:sentences]
        return " ".join(found[i] for i in sorted(best))


class Seq2SeqSummarizer:
    backend = "transformers"

    def __init__(self, location: str):
        self.tokenizer, self.model = _seq2seq(location)

    def summarize(self, text: str, sentences: int = 2) -> str:
        """An abstractive summary of about ``sentences`` sentences (at most 60 new tokens each)."""
        if not text.strip():
            raise ValueError("got no text to summarize")
        return _generate(self.tokenizer, self.model, text, max_new_tokens=60 * sentences)


class ApertiumTranslator:
    """Apertium's command-line translator. ``translate`` blocks on a subprocess: from async code call
    it in a thread (``asyncio.to_thread``). Not ``asyncio.create_subprocess_exec``: in a Serve
    replica the loop is uvloop, which gives the child a socket as stdin; the ``apertium`` script
    opens /dev/stdin by name, fails, prints its usage and exits 0 (MagicStack/uvloop#532). That is
    why an empty output is an error here, not a translation.

    One call runs at a time: each is a pipeline of about ten processes (~0.1 GB together), and
    concurrent calls from a replica's threads multiplied that, for no speed-up on a small machine
    (the pipeline's stages already run in parallel). A call that waits longer than ``timeout_s`` for
    its turn fails like one that takes too long."""

    backend = "apertium"

    def __init__(self, pair: str, timeout_s: float = 30.0):
        self.command = ["apertium", "-u", pair]  # -u: unknown words unmarked (no '*')
        self.timeout_s = timeout_s
        self._one_at_a_time = threading.Lock()

    def translate(self, text: str) -> str:
        if not text.strip():
            raise ValueError("got no text to translate")
        if not self._one_at_a_time.acquire(timeout=self.timeout_s):
            raise EngineFailed(f"Apertium was busy for {self.timeout_s} s")
        try:
            done = subprocess.run(
                self.command, input=text, capture_output=True, text=True, timeout=self.timeout_s
            )
        except subprocess.TimeoutExpired:
            raise EngineFailed(f"Apertium gave no answer within {self.timeout_s} s") from None
        finally:
            self._one_at_a_time.release()
        if done.returncode != 0 or not done.stdout.strip():
            problem = done.stderr.strip()[:200] or "no output"
            raise EngineFailed(f"Apertium failed (exit code {done.returncode}): {problem}")
        return re.sub(r" {2,}", " ", done.stdout).strip()  # Apertium sometimes leaves double spaces


class Seq2SeqTranslator:
    backend = "transformers"

    def __init__(self, location: str, max_new_tokens: int = 512):
        self.tokenizer, self.model = _seq2seq(location)
        self.max_new_tokens = max_new_tokens

    def translate(self, text: str) -> str:
        if not text.strip():
            raise ValueError("got no text to translate")
        return _generate(self.tokenizer, self.model, text, self.max_new_tokens)


def load_summarizer(model: ResolvedModel) -> ExtractiveSummarizer | Seq2SeqSummarizer:
    """The summarization engine for ``resolve_model("summarization")`` (loads the weights)."""
    if model.backend == "extractive":
        return ExtractiveSummarizer(model.location)
    if model.backend == "transformers":
        return Seq2SeqSummarizer(model.location)
    raise ValueError(f"unknown summarization backend {model.backend!r}")


def load_translator(model: ResolvedModel, timeout_s: float = 30.0) -> ApertiumTranslator | Seq2SeqTranslator:
    """The translation engine for ``resolve_model("translation")``; ``timeout_s`` bounds an Apertium call."""
    if model.backend == "apertium":
        return ApertiumTranslator(model.location.removeprefix("apertium:"), timeout_s)
    if model.backend == "transformers":
        return Seq2SeqTranslator(model.location)
    raise ValueError(f"unknown translation backend {model.backend!r}")
