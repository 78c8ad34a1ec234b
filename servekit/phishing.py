"""UCI's Website Phishing table, read from the copy that the pinned ``river`` wheel ships.

River (BSD-3-Clause package) bundles ``river/datasets/phishing.csv.gz``: 1,250 websites, nine
indicators and a label ``is_phishing``. It is UCI's "Website Phishing" data (Abdelhamid, Ayesh and
Thabtah, 2014; 1,353 sites, three classes, CC BY 4.0) without its 103 "suspicious" sites, with the
indicators rescaled from UCI's -1/0/1 to 0/0.5/1 and renamed by River. The file is read through the
package's metadata, so nothing of River is imported. See data/README.md for the source and licence.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported when the data is read: `import servekit` stays light
    import pandas as pd

MEMBER = "river/datasets/phishing.csv.gz"
LABEL = "is_phishing"
#: River's column names, in the file's order, and UCI's name for each indicator
UCI_NAMES = {
    "empty_server_form_handler": "SFH",
    "popup_window": "popUpWidnow",
    "https": "SSLfinal_State",
    "request_from_other_domain": "Request_URL",
    "anchor_from_other_domain": "URL_of_Anchor",
    "is_popular": "web_traffic",
    "long_url": "URL_Length",
    "age_of_domain": "age_of_domain",
    "ip_in_url": "having_IP_Address",
}


class PhishingUnavailable(FileNotFoundError):
    pass


def data_file() -> Path:
    """The gzipped CSV inside the installed ``river`` package; says how to get it if missing."""
    try:
        path = Path(metadata.distribution("river").locate_file(MEMBER))
    except metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise PhishingUnavailable(
            "the phishing table ships inside the pinned `river` package: "
            "`python -m pip install river==0.26.1` (requirements.txt pins it)"
        )
    return path


def load_phishing() -> pd.DataFrame:
    """The 1,250 labelled sites: nine indicator columns (floats in {0, 0.5, 1}, River's names, see
    ``UCI_NAMES``) and ``is_phishing`` (0 or 1), in the file's order."""
    import pandas as pd

    frame = pd.read_csv(data_file())
    if list(frame.columns) != [*UCI_NAMES, LABEL] or len(frame) != 1250:
        raise ValueError(f"unexpected phishing table: {list(frame.columns)}, {len(frame)} rows")
    features = frame[list(UCI_NAMES)].astype(float)
    return features.assign(**{LABEL: frame[LABEL].astype(int)})
