"""The series names a scrape of shared/metrics.py's registry can show: what the tests hold
the agreed names, the dashboard and the alert rules against."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from shared.metrics import REGISTRY

_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum", ""),
}


def exported_names(registry: CollectorRegistry = REGISTRY) -> set[str]:
    """Every series name a scrape can show (`x_total`, `x_bucket`, …)."""
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names
