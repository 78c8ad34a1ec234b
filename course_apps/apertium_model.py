"""Lesson 02's Apertium translator as an MLflow model (a "model from code"), for the capstone's
translation reference (solutions/capstone/translation_service.ipynb).

MLflow copies this file into the model version; the version's ``model_config`` names the language
pair. The engine is the course's (``servekit.backends.ApertiumTranslator``): a rule-based system,
installed as the Debian packages ``apertium`` and ``apertium-eng-spa``, so a version holds no
weights, only which engine and pair it runs, and the run beside it holds its measured quality.

``predict`` takes a list of texts and returns one translation per text, all from
a single run of Apertium: the texts are joined by blank lines, which Apertium keeps, and split
again afterwards (one process pipeline per batch instead of one per text; see the notebook).
"""

from __future__ import annotations

import mlflow
from mlflow.models import set_model

SEPARATOR = "\n\n"  # a blank line: Apertium translates across single line breaks, not across this


def translate_many(engine, texts: list[str]) -> list[str]:
    """Translate ``texts`` (whitespace collapsed) with one call of ``engine.translate`` when its
    output splits back into as many pieces, else one call per text."""
    clean = [" ".join(t.split()) for t in texts]
    if len(clean) > 1:
        pieces = engine.translate(SEPARATOR.join(clean)).split(SEPARATOR)
        if len(pieces) == len(clean):
            return [p.strip() for p in pieces]
    return [engine.translate(t) for t in clean]


class ApertiumModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from servekit.backends import ApertiumTranslator

        config = context.model_config or {}
        self.pair = config.get("pair", "eng-spa")
        self.engine = ApertiumTranslator(self.pair, timeout_s=float(config.get("timeout_s", 30)))

    def predict(self, context, model_input: list[str], params=None) -> list[str]:
        return translate_many(self.engine, model_input)


set_model(ApertiumModel())
