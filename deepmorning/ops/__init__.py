"""Operating deepmorning, apart from the library: the command-line tools around a cluster.

* :mod:`~deepmorning.ops.clusters`: ``deepmorning cluster`` (validate, up/down, selftest);
* :mod:`~deepmorning.ops.cluster_config`: offline validation of launcher YAMLs, KubeRay
  manifests and Grafana dashboards;
* :mod:`~deepmorning.ops.jobs`: ``deepmorning job`` (Ray's Jobs API);
* :mod:`~deepmorning.ops.selftest`: the short workload ``cluster selftest`` runs;
* :mod:`~deepmorning.ops.commands`: ``deepmorning info`` and ``deepmorning results``.

:mod:`deepmorning.platform` is the library every area stands on (runtime, run directories,
console, metrics, plots) and holds no command-line code.
"""
