"""Read a Prometheus text endpoint (Ray's per-node metrics port) into plain Python values.

Ray's dashboard agent on every node serves Prometheus text at
``http://<node>:<metrics_export_port>/metrics``; Serve's built-in metrics and a deployment's own
``ray.serve.metrics`` Counter/Histogram land there (with a ``ray_`` prefix). ``scrape`` fetches and
parses it with ``prometheus_client``'s own parser; ``histogram_quantile`` estimates a percentile from
a histogram's ``_bucket`` samples the way PromQL's ``histogram_quantile`` does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import requests
from prometheus_client.parser import text_string_to_metric_families

#: One sample: its labels and its value.
Sample = tuple[dict[str, str], float]


def parse(text: str) -> dict[str, list[Sample]]:
    """Prometheus text exposition -> {sample name: [(labels, value), ...]}.

    Keys are *sample* names, so a histogram ``h`` gives ``h_bucket``, ``h_count`` and ``h_sum``
    and a counter ``c`` gives ``c_total`` (and ``c_created`` where the exporter writes it).
    """
    out: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return out


def scrape(url: str, timeout_s: float = 5) -> dict[str, list[Sample]]:
    """GET ``url`` (a ``/metrics`` endpoint) and parse it; raises on an HTTP error."""
    response = requests.get(url, timeout=timeout_s)
    response.raise_for_status()
    return parse(response.text)


def select(samples: Iterable[Sample], **labels: str) -> list[Sample]:
    """The samples whose labels include every ``labels`` item (e.g. ``application="app"``)."""
    return [(lab, v) for lab, v in samples if all(lab.get(k) == want for k, want in labels.items())]


def total(samples: Iterable[Sample], **labels: str) -> float:
    """Sum of the matching samples' values (e.g. requests over all replicas and routes)."""
    return sum(v for _, v in select(samples, **labels))


def histogram_quantile(buckets: Iterable[Sample], q: float, **labels: str) -> float:
    """The ``q`` quantile (0..1) from a histogram's cumulative ``_bucket`` samples.

    Buckets with equal ``le`` are summed across the other labels (replicas, routes), then the
    quantile is interpolated linearly inside its bucket, as PromQL's ``histogram_quantile`` does:
    a value in the ``+Inf`` bucket gives the highest finite bound. NaN when there are no
    observations. For a window (a load run), subtract a scrape taken before it bucket by bucket
    (``bucket_delta``) first: the buckets count since the process started.
    """
    if not 0 <= q <= 1:
        raise ValueError(f"q must be within [0, 1], not {q}")
    cumulative: dict[float, float] = {}
    for lab, value in select(buckets, **labels):
        if "le" not in lab:
            raise ValueError(f"not a _bucket sample (no 'le' label): {lab}")
        bound = float(lab["le"])  # "+Inf" parses to inf
        cumulative[bound] = cumulative.get(bound, 0.0) + value
    if not cumulative:
        return math.nan
    if math.inf not in cumulative:
        raise ValueError(f"histogram buckets lack the +Inf bucket: {sorted(cumulative)}")
    count = cumulative[math.inf]
    if count <= 0:
        return math.nan
    rank = q * count
    lower_bound, lower_count = 0.0, 0.0
    for bound in sorted(cumulative):
        upto = cumulative[bound]
        if upto >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bucket: its bound is all we know
            if upto == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (upto - lower_count)
        lower_bound, lower_count = bound, upto
    return lower_bound  # pragma: no cover - the +Inf bucket always reaches the rank


def bucket_delta(after: Iterable[Sample], before: Iterable[Sample]) -> list[Sample]:
    """``after - before`` per label set: the observations made between two scrapes."""
    earlier = {tuple(sorted(lab.items())): v for lab, v in before}
    return [(lab, v - earlier.get(tuple(sorted(lab.items())), 0.0)) for lab, v in after]
