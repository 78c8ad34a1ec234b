"""English-Spanish sentence pairs from JupyterLab's Spanish language pack (a pinned PyPI package).

``jupyterlab-language-pack-es-ES`` (BSD-3-Clause, Project Jupyter Contributors) ships the
compiled message catalogs (gettext ``.mo``) of JupyterLab and a few extensions: each entry is an
English interface message and its Spanish translation, written and reviewed by volunteers on
Crowdin. A compiled catalog holds only finished translations (no fuzzy ones). No PyPI package was
found that ships a general-domain English-Spanish test set (WMT, FLORES, Tatoeba): these pairs are
real human translations, but of software messages, a narrow domain. See data/README.md.
"""

from __future__ import annotations

import gettext
import re
from importlib import resources

PACKAGE = "jupyterlab_language_pack_es_ES"
CATALOGS = ("locale", "es_ES", "LC_MESSAGES")
#: a message with any of these is markup or a template (placeholders, HTML, paths), not a sentence
NOT_PROSE = re.compile(r"[%{}<>\\$&_|`\[\]]")


def load_ui_strings(min_words: int = 4) -> list[tuple[str, str, str]]:
    """``(english, spanish, catalog)`` for every translated message of at least ``min_words``
    English words that is prose (no placeholder, markup or path), whitespace collapsed, the first
    translation of each English text kept; sorted by catalog, then English text."""
    folder = resources.files(PACKAGE).joinpath(*CATALOGS)
    pairs: dict[str, tuple[str, str]] = {}
    for mo in sorted((f for f in folder.iterdir() if f.name.endswith(".mo")), key=lambda f: f.name):
        with mo.open("rb") as fp:
            catalog = gettext.GNUTranslations(fp)._catalog  # msgid -> msgstr, as gettext reads it
        for key, value in sorted((k, v) for k, v in catalog.items() if isinstance(k, str)):
            english = " ".join(key.split("\x04")[-1].split())  # drop a message context ("ctx\x04id")
            spanish = " ".join(value.split())
            if not english or not spanish or NOT_PROSE.search(english + spanish):
                continue
            if len(english.split()) >= min_words and english not in pairs:
                pairs[english] = (spanish, mo.name.removesuffix(".mo"))
    return sorted(((en, es, cat) for en, (es, cat) in pairs.items()), key=lambda p: (p[2], p[0]))
