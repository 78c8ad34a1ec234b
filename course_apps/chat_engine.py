"""Lesson 11's text generation, without Serve: load a causal LM, encode a chat, decode token by token.

This is model plumbing; the lesson's Serve code (the deployment that owns a ``ChatEngine``, the
generator method that streams its tokens through a handle, the OpenAI-compatible FastAPI ingress)
is written out in the notebook. Decoding is greedy by default (the stored outputs must repeat), or
sampled with a seeded generator when ``temperature > 0``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache


@dataclass(frozen=True)
class Delta:
    """One step of generation: the new text (may be empty while a character is incomplete)."""

    text: str
    finish_reason: str | None = None  # "stop" (end of turn) or "length" (max_tokens reached)


class ChatEngine:
    def __init__(self, model_dir: str, threads: int = 1):
        torch.set_num_threads(threads)  # as many as the replica's CPUs, not the machine's
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        self.context_window: int = self.model.config.max_position_embeddings
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = {self.tokenizer.eos_token_id, *(eos if isinstance(eos, list) else [eos])} - {None}

    def encode(self, messages: list[dict[str, str]]) -> list[int]:
        """The chat template applied to ``messages``, ending where the assistant's answer starts."""
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)
        return list(ids["input_ids"])

    @torch.inference_mode()
    def stream(
        self, prompt: list[int], max_tokens: int, temperature: float = 0.0, seed: int = 0
    ) -> Iterator[Delta]:
        """Prefill the prompt once, then one forward pass per new token, reusing the KV cache."""
        cache, generated, shown = DynamicCache(), [], ""
        rng = torch.Generator().manual_seed(seed)
        inputs = torch.tensor([prompt])
        for step in range(max_tokens):
            logits = self.model(input_ids=inputs, past_key_values=cache, use_cache=True).logits[0, -1]
            if temperature > 0:
                token = int(torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=rng))
            else:
                token = int(logits.argmax())
            if token in self.eos_ids:
                yield Delta("", "stop")
                return
            generated.append(token)
            text = self.tokenizer.decode(generated, skip_special_tokens=True)
            new, complete = text[len(shown) :], not text.endswith("\ufffd")
            shown = text if complete else shown
            yield Delta(new if complete else "", "length" if step == max_tokens - 1 else None)
            inputs = torch.tensor([[token]])

    @torch.inference_mode()
    def generate_batch(self, prompts: list[list[int]], max_tokens: int) -> list[tuple[str, int]]:
        """Greedy answers for several prompts in one padded batch: (text, completion tokens) each.
        Every sequence runs until the longest one stops: a request-level batch, not continuous."""
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        width = max(len(p) for p in prompts)
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])  # left padding
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        out = self.model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=max_tokens, do_sample=False, pad_token_id=pad
        )[:, width:]
        answers = []
        for row in out.tolist():
            tokens = [t for t in row if t not in self.eos_ids and t != pad]
            answers.append((self.tokenizer.decode(tokens, skip_special_tokens=True), len(tokens)))
        return answers
