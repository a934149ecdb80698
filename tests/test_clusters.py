"""Cluster configs, their offline validation, the on-prem pre-flight and the storage guard."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_cli

from deepmorning.ops import cluster_config, clusters, jobs, kuberay_config
from deepmorning.platform import storage
from deepmorning.platform.errors import DeepmorningError

CLUSTERS = REPO / "clusters"
CONFIG_FILES = sorted(
    p for p in CLUSTERS.rglob("*") if p.suffix in (".yaml", ".yml", ".json") and p.is_file()
)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# -- the shipped configs ------------------------------------------------------------------------
def test_the_expected_configs_exist():
    names = {p.relative_to(CLUSTERS).as_posix() for p in CONFIG_FILES}
    for name in ("local.yaml", "aws.yaml", "gcp.yaml", "fake.yaml", "kuberay/raycluster.yaml",
                 "kuberay/rayjob.yaml", "grafana/deepmorning_dashboard.json"):
        assert name in names


def test_every_config_in_clusters_validates_from_the_cli():
    res = run_cli("cluster", "validate", *map(str, CONFIG_FILES))
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("ok: ") == len(CONFIG_FILES)


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.relative_to(CLUSTERS).as_posix())
def test_each_config_validates(path: Path):
    problems, described = cluster_config.validate_file(path)
    assert problems == []
    assert described


@pytest.mark.parametrize("name", ["aws", "gcp", "local"])
def test_launcher_configs_use_the_current_format_and_install_deepmorning(name):
    config = yaml.safe_load((CLUSTERS / f"{name}.yaml").read_text())
    assert "head_node" not in config and "worker_nodes" not in config
    assert any("deepmorning" in c for c in config["setup_commands"])
    start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in start and "--metrics-export-port" in start
    if name != "local":  # the local provider derives its node types from the IPs
        types = config["available_node_types"]
        assert config["head_node_type"] in types
        head = types[config["head_node_type"]]
        assert head["resources"].get("GPU", 0) == 0
        gpu = [t for n, t in types.items() if n != config["head_node_type"]]
        assert gpu and gpu[0]["resources"]["GPU"] >= 1
        assert gpu[0]["min_workers"] < gpu[0]["max_workers"]
    else:
        assert config["provider"]["type"] == "local" and config["provider"]["head_ip"]


def test_a_name_without_path_resolves_to_clusters_dir():
    assert cluster_config.resolve("aws") == CLUSTERS / "aws.yaml"
    with pytest.raises(FileNotFoundError):
        cluster_config.resolve("no-such-cluster")


def test_rayjob_runs_a_deepmorning_nas_search():
    job = yaml.safe_load((CLUSTERS / "kuberay" / "rayjob.yaml").read_text())
    assert job["spec"]["entrypoint"].startswith("python -m deepmorning nas search")


# -- broken copies --------------------------------------------------------------------------------
def _write(tmp_path: Path, name: str, obj) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(obj))
    return path


def test_broken_copies_fail_with_one_clear_line_each(tmp_path):
    aws = yaml.safe_load((CLUSTERS / "aws.yaml").read_text())
    misspelled = copy.deepcopy(aws)
    misspelled["setup_comands"] = misspelled.pop("setup_commands")
    no_provider = copy.deepcopy(aws)
    del no_provider["provider"]
    rc = yaml.safe_load((CLUSTERS / "kuberay" / "raycluster.yaml").read_text())
    del rc["spec"]["workerGroupSpecs"][0]["groupName"]
    files = [_write(tmp_path, "misspelled.yaml", misspelled),
             _write(tmp_path, "no-provider.yaml", no_provider),
             _write(tmp_path, "nameless.yaml", rc)]
    res = run_cli("cluster", "validate", *map(str, files))
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    lines = res.stdout.splitlines()
    assert [ln for ln in lines if ln.startswith(str(files[0]))] == [
        f"{files[0]}: top level: unknown key 'setup_comands' (did you mean 'setup_commands'?)"
    ]
    assert [ln for ln in lines if ln.startswith(str(files[1]))] == [
        f"{files[1]}: top level: missing required key 'provider'"
    ]
    nameless = [ln for ln in lines if ln.startswith(str(files[2]))]
    assert len(nameless) == 1 and "workerGroupSpecs[0]: missing 'groupName'" in nameless[0]
    assert res.stderr.splitlines() == ["error: 3 of 3 file(s) failed validation"]


def _aws() -> dict:
    return yaml.safe_load((CLUSTERS / "aws.yaml").read_text())


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda c: c.update(head_node={"InstanceType": "m5.large"}), "deprecated format"),
        (lambda c: c.update(head_node_type="nope"), "head_node_type"),
        (lambda c: c["available_node_types"]["worker.gpu"].update(min_workers="two"),
         "min_workers: 'two' is not of type 'integer'"),
        (lambda c: c["available_node_types"]["worker.gpu"].update(min_workers=9),
         "max_workers"),
        (lambda c: c.update(setup_commands=["pip install numpy"]), "nothing installs deepmorning"),
    ],
    ids=["legacy-head-node", "unknown-head-type", "bad-type", "min-above-max", "no-deepmorning"],
)
def test_launcher_problems_are_named(mutate, fragment):
    config = _aws()
    mutate(config)
    problems = cluster_config.validate_launcher(config)
    assert len(problems) == 1 and fragment in problems[0], problems


def test_local_provider_without_head_ip_is_rejected_by_ray():
    config = yaml.safe_load((CLUSTERS / "local.yaml").read_text())
    del config["provider"]["head_ip"]
    problems = cluster_config.validate_launcher(config)
    assert len(problems) == 1 and "head_ip" in problems[0]


def test_kuberay_problems_are_named():
    job = yaml.safe_load((CLUSTERS / "kuberay" / "rayjob.yaml").read_text())
    del job["spec"]["entrypoint"]
    job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["minReplicas"] = 9
    del job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
    problems = cluster_config.validate_kuberay(job)
    assert any(p.startswith("spec.entrypoint: missing") for p in problems)
    assert any("minReplicas 9 is larger than maxReplicas 4" in p for p in problems)
    assert any("containers[0]: missing 'image'" in p for p in problems)
    assert cluster_config.validate_kuberay({"apiVersion": "ray.io/v1", "kind": "RayCluster",
                                            "metadata": {"name": "x"}}) == ["spec: missing"]


def test_invalid_yaml_is_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("cluster_name: [unclosed\n")
    res = run_cli("cluster", "validate", str(path))
    assert res.returncode != 0
    assert any("not valid YAML at line" in ln for ln in res.stdout.splitlines())


# -- pre-flight of on-prem hosts --------------------------------------------------------------
def test_preflight_names_the_unreachable_host_instead_of_hanging(tmp_path):
    """Loopback only: nothing listens for SSH there in the test environment, or it refuses us."""
    config = yaml.safe_load((CLUSTERS / "local.yaml").read_text())
    config["provider"].update(head_ip="127.0.0.1", worker_ips=[])
    config["auth"] = {"ssh_user": "nobody-deepmorning-test"}
    config.pop("file_mounts")
    path = _write(tmp_path, "loopback.yaml", config)
    res = run_cli("cluster", "up", str(path), "--yes", "--ssh-timeout", "2", timeout=120)
    assert res.returncode != 0
    lines = error_lines(res.stderr)
    assert len(lines) == 1 and "host 127.0.0.1 failed the pre-flight" in lines[0], res.stderr
    assert res.stderr.splitlines() == lines and "FAIL: 127.0.0.1" in res.stdout
    assert "$ " not in res.stderr  # `ray up` never ran


def test_a_missing_token_to_copy_is_named_before_anything_runs(tmp_path):
    config = _aws()
    config["file_mounts"]["~/.ray/auth_token"] = str(tmp_path / "no-token")
    res = run_cli("cluster", "up", str(_write(tmp_path, "aws.yaml", config)), "--yes")
    line = error_lines(res.stderr)
    assert res.returncode != 0 and len(line) == 1 and "ray get-auth-token --generate" in line[0]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["up", "clusters/kuberay/raycluster.yaml"], "kubectl apply"),
        (["dashboard", "no-such-cluster"], "no cluster config 'no-such-cluster'"),
        (["down", "kuberay/rayjob.yaml", "--yes"], "kubectl apply"),
    ],
)
def test_wrappers_refuse_what_ray_cannot_use_in_one_line(args, fragment):
    res = run_cli("cluster", *args, cwd=REPO)
    lines = error_lines(res.stderr)
    assert res.returncode != 0 and len(lines) == 1 and fragment in lines[0], res.stderr


def test_preflight_skips_cloud_providers():
    assert clusters.preflight(_aws()) == []


def test_preflight_probes_the_interpreter_the_config_starts_ray_with():
    config = yaml.safe_load((CLUSTERS / "local.yaml").read_text())
    assert clusters.config_python(config) == "~/deepmorning-venv/bin/python"
    assert clusters.config_python(_aws()) == "python3"


def _fake_python(path: Path) -> Path:
    """An executable answering the probe like Python 3.99 with Ray 9.9.9 (a marker of ours)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('#!/bin/sh\ncase "$2" in *ray*) echo 9.9.9;; *) echo 3.99.0;; esac\n')
    path.chmod(0o755)
    return path


def test_probe_quotes_the_config_interpreter_path(tmp_path):
    """A config-derived path is one shell word: `$(...)` in it never runs on the host."""
    marker = tmp_path / "pwned"
    hostile = f"/opt/$(touch${{IFS}}{marker})/bin/python"
    proc = subprocess.run(["sh", "-c", clusters.probe_script(hostile)], capture_output=True,
                          text=True, timeout=60)
    assert not marker.exists()
    assert proc.stdout.split()[0].count(".") == 2  # it fell back to python3, as it should
    home = tmp_path / "home"
    _fake_python(home / "deepmorning venv" / "bin" / "python")
    proc = subprocess.run(["sh", "-c", clusters.probe_script("~/deepmorning venv/bin/python")],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HOME": str(home)})
    assert proc.stdout.split() == ["3.99.0", "9.9.9"]  # ~ still means the remote HOME


def test_launcher_configs_raise_the_open_file_limit_before_ray_starts():
    """Ray needs many open files (`ulimit -n`); core dumps (`ulimit -c`) are not what it needs."""
    for path in sorted(CLUSTERS.glob("*.yaml")):
        if path.name == "fake.yaml":  # no ray start commands: `cluster up` starts its head
            continue
        config = yaml.safe_load(path.read_text())
        for key in ("head_start_ray_commands", "worker_start_ray_commands"):
            starts = [c for c in config[key] if "ray start" in c]
            assert starts, (path, key)
            for command in starts:
                assert command.lstrip().startswith("ulimit -n "), (path.name, key, command)
                assert "ulimit -c" not in command


@pytest.mark.parametrize(
    "answer, ok, fragment",
    [
        ("3.11.7\n2.60.0", True, "Ray 2.60.0"),
        ("3.11.7\nnone", True, "not installed yet"),
        ("3.8.10\n2.60.0", False, "older than the 3.10"),
        ("3.11.7\n2.9.3", False, "versions must match"),
        ("garbage", False, "unexpected answer"),
    ],
)
def test_host_versions_are_judged(answer, ok, fragment):
    check = clusters.judge_versions("10.1.2.3", answer, "2.60.0")
    assert check.ok is ok and fragment in check.detail and check.host == "10.1.2.3"


def test_kuberay_manifest_is_not_given_to_ray_up():
    with pytest.raises(DeepmorningError, match="kubectl apply"):
        clusters.load_launcher_config(CLUSTERS / "kuberay" / "raycluster.yaml")


# -- shared storage guard ---------------------------------------------------------------------
def test_local_output_is_refused_on_a_multi_node_cluster(tmp_path, monkeypatch):
    monkeypatch.delenv(storage.SHARED_PATHS_ENV, raising=False)
    fstype = storage.filesystem_of(tmp_path)[1]
    if fstype in storage.SHARED_FS_TYPES:
        pytest.skip(f"{tmp_path} is on a shared filesystem ({fstype}) here")
    with pytest.raises(DeepmorningError) as exc:
        storage.check_shared_output(tmp_path / "runs", num_nodes=3)
    message = str(exc.value)
    assert str(tmp_path / "runs") in message and "3 nodes" in message and "s3://" in message
    storage.check_shared_output(tmp_path / "runs", num_nodes=1)


@pytest.mark.parametrize("uri", ["s3://bucket/runs", "gs://bucket/runs/nas", "abfs://c@a/runs"])
def test_bucket_uris_pass_the_guard(uri):
    storage.check_shared_output(uri, num_nodes=8)


def test_declared_shared_prefix_passes_the_guard(tmp_path, monkeypatch):
    monkeypatch.setenv(storage.SHARED_PATHS_ENV, f"/nonexistent:{tmp_path}")
    storage.check_shared_output(tmp_path / "runs" / "nas", num_nodes=4)
    assert not storage.is_uri("file:///tmp/x") and not storage.is_uri("/tmp/x")


def test_without_a_connection_the_guard_counts_one_node(tmp_path):
    import ray

    if ray.is_initialized():
        pytest.skip("this process is connected to Ray")
    assert storage.cluster_node_count() == 1
    storage.check_shared_output(tmp_path)  # one node: anything goes


# -- jobs: entrypoint and address (no cluster needed) ---------------------------------------------
def test_entrypoint_runs_deepmorning_with_the_cluster_interpreter():
    entry = jobs.build_entrypoint(["deepmorning", "nas", "search", "--output", "a b"])
    assert entry.endswith("""exec "$PY" -m deepmorning nas search --output 'a b'""")
    assert "/proc/$PPID/maps" in entry and not re.match(r"\s*python", entry)
    assert jobs.build_entrypoint(["info"], python="/opt/venv/bin/python") == (
        "exec /opt/venv/bin/python -m deepmorning info"
    )
    with pytest.raises(DeepmorningError):
        jobs.build_entrypoint([])


@pytest.mark.parametrize(
    "explicit, global_address, env, expected",
    [
        (None, None, {}, "http://127.0.0.1:8265"),
        ("10.0.0.5:8265", None, {}, "http://10.0.0.5:8265"),
        (None, "10.0.0.5:6379", {}, "http://10.0.0.5:8265"),
        (None, "ray://10.0.0.5:10001", {}, "http://10.0.0.5:8265"),
        (None, "http://head:9999/", {}, "http://head:9999"),
        (None, "auto", {}, "http://127.0.0.1:8265"),
        (None, "10.0.0.5:6379", {"RAY_API_SERVER_ADDRESS": "http://x:1"}, "http://x:1"),
        ("https://h:443", "10.0.0.5:6379", {}, "https://h:443"),
    ],
)
def test_jobs_address_is_derived(explicit, global_address, env, expected):
    assert jobs.jobs_address(explicit, global_address, env) == expected


# -- Grafana board --------------------------------------------------------------------------------
def test_grafana_board_queries_the_exported_deepmorning_metrics():
    board = json.loads((CLUSTERS / "grafana" / "deepmorning_dashboard.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    assert all("ray_deepmorning_" in e for e in exprs)
    titles = " ".join(p["title"] for p in board["panels"]).lower()
    for word in ("nas", "reward", "episode return", "steps per second", "trials", "best metric"):
        assert word in titles


# -- KubeRay behind token authentication ----------------------------------------------------------
KUBERAY = sorted((CLUSTERS / "kuberay").glob("*.yaml"))


def _raycluster() -> dict:
    return yaml.safe_load((CLUSTERS / "kuberay" / "raycluster.yaml").read_text())


def _ray_containers(doc: dict) -> list[dict]:
    spec = doc["spec"]
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def test_shipped_kuberay_manifests_have_token_auth_and_validate_without_warnings():
    for path in KUBERAY:
        assert cluster_config.warnings_of(path) == [], path
    res = run_cli("cluster", "validate", *map(str, KUBERAY))
    assert res.returncode == 0 and "warning" not in res.stderr, res.stderr
    for container in _ray_containers(_raycluster()):
        env = {e["name"]: e for e in container["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "deepmorning-ray-token"
    job = yaml.safe_load((CLUSTERS / "kuberay" / "rayjob.yaml").read_text())
    assert job["spec"]["rayClusterSpec"]["authOptions"]["mode"] == "token"


def test_a_manifest_without_auth_validates_with_a_warning(tmp_path):
    doc = _raycluster()
    for container in _ray_containers(doc):
        del container["env"]
    res = run_cli("cluster", "validate", str(_write(tmp_path, "open.yaml", doc)))
    assert res.returncode == 0 and "ok: " in res.stdout
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ")
    assert "without token authentication" in lines[0] and "can submit jobs" in lines[0]


def test_half_configured_auth_is_a_problem_and_a_literal_token_a_warning():
    doc = _raycluster()
    del _ray_containers(doc)[1]["env"]  # the GPU workers would never join the head
    problems = cluster_config.validate_kuberay(doc)
    assert len(problems) == 1 and "workerGroupSpecs[0]" in problems[0]
    assert "RAY_AUTH_MODE=token is missing" in problems[0]
    doc = _raycluster()
    _ray_containers(doc)[0]["env"][1] = {"name": "RAY_AUTH_TOKEN", "value": "hunter2"}
    assert cluster_config.validate_kuberay(doc) == []
    [warning] = kuberay_config.auth_warnings(doc)
    assert "headGroupSpec" in warning and "written in the manifest" in warning
    job = yaml.safe_load((CLUSTERS / "kuberay" / "rayjob.yaml").read_text())
    del job["spec"]["rayClusterSpec"]["authOptions"]
    for group in [job["spec"]["rayClusterSpec"]["headGroupSpec"],
                  *job["spec"]["rayClusterSpec"]["workerGroupSpecs"]]:
        group["template"]["spec"]["containers"][0]["env"] = _ray_containers(_raycluster())[0]["env"]
    assert any(p.startswith("spec.submitterPodTemplate") for p in
               cluster_config.validate_kuberay(job))


def test_dashboard_of_a_raycluster_is_a_kubectl_port_forward_with_the_token_hint():
    doc = _raycluster()
    assert clusters.port_forward_command(doc, 8265) == [
        "kubectl", "port-forward", "svc/deepmorning-head-svc", "8265:8265"]
    doc["metadata"]["namespace"] = "ml"
    assert clusters.port_forward_command(doc, 9000)[2:4] == ["-n", "ml"]
    hint = clusters.token_hint(doc)
    assert "kubectl get secret deepmorning-ray-token" in hint and "base64 -d" in hint
    job = yaml.safe_load((CLUSTERS / "kuberay" / "rayjob.yaml").read_text())
    with pytest.raises(DeepmorningError, match="rayClusterName"):
        clusters.port_forward_command(job, 8265)


def test_dashboard_without_kubectl_is_one_line():
    bin_dir = str(Path(sys.executable).parent)  # python and ray, no kubectl
    assert shutil.which("kubectl", path=bin_dir) is None
    res = run_cli("cluster", "dashboard", "kuberay/raycluster", cwd=REPO, env={"PATH": bin_dir})
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode != 0 and len(lines) == 1, res.stderr
    assert "kubectl is not installed" in lines[0] and "svc/deepmorning-head-svc" in lines[0]
