"""Reading a submission: its code, its cleanup cells, and what flags it before it runs."""

from __future__ import annotations

import hashlib
import io
import re
import tokenize
from pathlib import Path


def notebook_problem(nb: dict) -> str | None:
    """Why the notebook format's schema rejects ``nb`` (nbformat reads some broken files, such as a
    code cell without ``source``, that the grader cannot run), or None."""
    import nbformat

    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        where = ""
        for part in exc.absolute_path:
            where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
        return f"{exc.message} (at {where or 'the top level'})"
    return None


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def code_cells(nb: dict) -> list[str]:
    """The sources of the notebook's code cells, in order."""
    return [_source(c) for c in nb["cells"] if c["cell_type"] == "code"]


def code_source(nb: dict) -> str:
    return "\n\n".join(code_cells(nb))


def _tagged_cleanup(cell: dict) -> bool:
    return "cleanup" in cell.get("metadata", {}).get("tags", [])


def _blank(cell: dict) -> bool:
    """A code cell with nothing but blank lines and comments."""
    return all(not line.strip() or line.lstrip().startswith("#") for line in _source(cell).splitlines())


def _cleanup_heading(cells: list) -> int | None:
    """The index of the first markdown ``## Cleanup`` heading, if any."""
    for i, c in enumerate(cells):
        if c["cell_type"] == "markdown" and re.match(r"#+\s*clean[\s-]?up\b", _source(c).strip(), re.I):
            return i
    return None


def cleanup_cells(nb: dict) -> list[int]:
    """Indices of the cleanup cells, which run after the checks: the code cells from the start of the
    last group of code cells tagged ``cleanup`` (tagged cells with only blank or comment cells between
    them) to the end. A tagged cell that untagged code cells follow before that group (a cleanup cell
    copied to the top, say) is an ordinary cell: it runs in order, before the checks. A ``## Cleanup``
    heading after the last tagged cell, or with no tagged cells, makes the code cells after the heading
    the cleanup; else the last code cell is, if it shuts Serve or Ray down."""
    cells = nb["cells"]
    code = [i for i, c in enumerate(cells) if c["cell_type"] == "code"]
    start, last, previous_tagged = None, None, False
    for i in code:
        if _tagged_cleanup(cells[i]):
            start = i if not previous_tagged else start
            last, previous_tagged = i, True
        elif not _blank(cells[i]):
            previous_tagged = False
    heading = _cleanup_heading(cells)
    if start is not None and (heading is None or heading < last):
        return [i for i in code if i >= start]
    if heading is not None:
        return [j for j in code if j > heading]
    if code:
        last = _source(cells[code[-1]])
        if "serve.shutdown(" in last or "ray.shutdown(" in last or "servekit.shutdown(" in last:
            return [code[-1]]
    return []


def _cells(indices: list[int]) -> str:
    """``Cell 3`` or ``Cells 3, 5``."""
    return ("Cell " if len(indices) == 1 else "Cells ") + ", ".join(str(i) for i in indices)


def cleanup_notes(nb: dict, cleanup: list[int]) -> list[str]:
    """What a reader of the report should know about which cells ran when, beyond the cleanup cells:
    tagged cells that ran before the checks, untagged ones that ran after them."""
    cells = nb["cells"]
    tagged = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and _tagged_cleanup(c)]
    notes = []
    if early := [i for i in tagged if i not in cleanup]:
        notes.append(
            f"{_cells(early)} tagged `cleanup` ran in order before the checks, as ordinary code: other"
            " code cells follow, and the cleanup is the last group of tagged cells."
        )
    if tagged and (untagged := [i for i in cleanup if i not in tagged and not _blank(cells[i])]):
        notes.append(
            f"{_cells(untagged)}, not tagged `cleanup`, ran after the checks with the cleanup cells"
            f" (from cell {cleanup[0]} on)."
        )
    return notes


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
        code, strings = _code_and_strings(_source(cell))
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
