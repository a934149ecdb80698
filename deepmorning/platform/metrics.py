"""Live figures on the Ray dashboard through ``ray.util.metrics``.

Every metric is named ``deepmorning_<name>`` and tagged with the run (``run``) so several runs
on one cluster stay apart. Ray exports them on each node's metrics endpoint for Prometheus;
``clusters/grafana/`` holds a dashboard for them.
"""

from __future__ import annotations

from collections.abc import Mapping

PREFIX = "deepmorning_"


class RunMetrics:
    """Gauges and counters for one run, created lazily on first use.

    ``set(name, value)`` drives a gauge, ``inc(name, n)`` a counter. Metric creation failures
    (e.g. no Ray connection) are swallowed: metrics never break a job.
    """

    def __init__(self, run: str, area: str, descriptions: Mapping[str, str] | None = None):
        self.tags = {"run": run, "area": area}
        self.descriptions = dict(descriptions or {})
        self._gauges: dict = {}
        self._counters: dict = {}

    def _make(self, kind: str, name: str):
        from ray.util import metrics

        cls = metrics.Gauge if kind == "gauge" else metrics.Counter
        metric = cls(
            PREFIX + name,
            description=self.descriptions.get(name, name.replace("_", " ")),
            tag_keys=tuple(self.tags),
        )
        metric.set_default_tags(self.tags)
        return metric

    def set(self, name: str, value: float) -> None:
        try:
            if name not in self._gauges:
                self._gauges[name] = self._make("gauge", name)
            self._gauges[name].set(float(value))
        except Exception:  # noqa: BLE001
            pass

    def inc(self, name: str, value: float = 1.0) -> None:
        try:
            if name not in self._counters:
                self._counters[name] = self._make("counter", name)
            self._counters[name].inc(float(value))
        except Exception:  # noqa: BLE001
            pass
