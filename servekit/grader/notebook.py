"""Reading a submission: its code, its cleanup cells, and what flags it before it runs."""

from __future__ import annotations

import hashlib
import io
import re
import tokenize
from pathlib import Path


def code_source(nb: dict) -> str:
    return "\n\n".join(
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in nb["cells"]
        if c["cell_type"] == "code"
    )


def cleanup_cells(nb: dict) -> list[int]:
    """Indices of the cleanup cells: from the first code cell tagged ``cleanup`` to the end; else the
    code cells after a ``## Cleanup`` heading; else the last code cell if it shuts Serve or Ray down."""
    cells = nb["cells"]
    code = [i for i, c in enumerate(cells) if c["cell_type"] == "code"]
    tagged = [i for i in code if "cleanup" in cells[i].get("metadata", {}).get("tags", [])]
    if tagged:
        return [i for i in code if i >= tagged[0]]
    for i, c in enumerate(cells):
        text = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        if c["cell_type"] == "markdown" and re.match(r"#+\s*clean[\s-]?up\b", text.strip(), re.I):
            return [j for j in code if j > i]
    if code:
        last = cells[code[-1]]["source"]
        last = "".join(last) if isinstance(last, list) else last
        if "serve.shutdown(" in last or "ray.shutdown(" in last or "servekit.shutdown(" in last:
            return [code[-1]]
    return []


_SUSPICIOUS = [
    (re.compile(r"\bchecks_\d+", re.I), "names a hidden checks file"),
    (re.compile(r"\bgrading\s*\.\s*checks|grading[/\\]+checks", re.I), "names the hidden checks"),
    (re.compile(r"servekit\W{1,3}grader?\b|\bgrade\.py\b"), "names the grader (servekit.grade)"),
    (re.compile(r"from\s+servekit\s+import\s[^\n]*\bgrader?\b"), "imports the grader"),
    (re.compile(r"__grader"), "touches the grader's injected cell"),
]


#: A string that names the grading/ folder, unless it is the public rubric's path.
_GRADING_PATH = re.compile(r"\bgrading\b(?![/\\]rubric_\d+\.json)", re.I)


def _code_and_strings(source: str) -> tuple[str, list[str]]:
    """The cell's code without comments (a comment that says 'checks_10' refers to nothing), and its
    string literals. Cells that do not tokenize (magics) lose their comments line by line."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        code = "\n".join(line.split("#", 1)[0] for line in source.splitlines())
        return code, [m[1] for m in re.findall(r"""(['"])(.*?)\1""", code)]
    # An f-string's {expressions} are code, not text: `f"{grading['total']}"` names a variable.
    strings = [re.sub(r"\{[^{}]*\}", "", t.string) for t in tokens if t.type == tokenize.STRING]
    return " ".join(t.string for t in tokens if t.type != tokenize.COMMENT), strings


def integrity_findings(nb: dict) -> list[str]:
    """Reasons to flag a submission before running it: its code refers to the hidden checks or the
    grader, or a string in it names the grading/ folder (the rubric, which is public, excepted)."""
    findings = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        code, strings = _code_and_strings(src)
        for pattern, why in _SUSPICIOUS:
            if m := pattern.search(code):
                findings.append(f"cell {i} {why}: `{m.group(0)}`")
        for text in strings:
            if _GRADING_PATH.search(text):
                findings.append(f"cell {i} names the grading/ folder (hidden checks): `{text[:80]}`")
                break
    return findings


def fingerprint(paths: list[Path]) -> dict[str, str]:
    """SHA-256 of the grader's own files and the hidden checks, to notice a run that changed them."""
    out = {}
    for root in paths:
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for f in files:
            if f.is_file() and "__pycache__" not in f.parts:
                out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out
