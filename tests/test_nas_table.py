"""The tabular benchmark's space enumeration and lookup (deepmorning.nas.table)."""

from __future__ import annotations

import csv
import fnmatch
import gzip
import json
import random
from pathlib import Path

import pytest
from conftest import run_cli

from deepmorning.nas import table as T
from deepmorning.nas.space import sample_uniform
from deepmorning.platform.errors import DeepmorningError


def test_the_spaces_enumerate_every_architecture_once():
    tiny = T.get_spec("tiny")
    archs = T.enumerate_architectures(tiny.space, tiny.layers)
    assert len(archs) == 16 == len({T.arch_key(a) for a in archs})
    cnn2 = T.get_spec("cnn2")
    archs = T.enumerate_architectures(cnn2.space, cnn2.layers)
    # (4 heights x 4 widths x 2 filter counts)^2 x 2 input sets of layer 1 (image or layer 0)
    assert len(archs) == 32 * 32 * 2 == len({T.arch_key(a) for a in archs})


def test_every_architecture_the_random_sampler_draws_is_in_the_table_space():
    spec = T.get_spec("cnn2")
    keys = {T.arch_key(a) for a in T.enumerate_architectures(spec.space, spec.layers)}
    rng = random.Random(0)
    space = spec.search_space()
    for _ in range(200):
        assert T.arch_key(sample_uniform(space, spec.layers, rng)) in keys


def test_lookup_draws_one_seeds_row_with_the_childs_seed(tmp_path):
    spec = T.get_spec("tiny")
    archs = T.enumerate_architectures(spec.space, spec.layers)
    rows = [[i, s, 0.5 + 0.01 * i + 0.001 * s, 0.4, 100 + i, 1.0]
            for i in range(len(archs)) for s in range(2)]
    path = tmp_path / T.TABLE_FILE
    with gzip.open(path, "wt") as fh:
        json.dump({"manifest": T.manifest(spec, 2, len(archs), 1.0), "rows": rows}, fh)
    got = {T.lookup(str(path), archs[3].to_dict(), seed)["table_seed"] for seed in range(20)}
    assert got == {0, 1}  # both seeds' results are seen across children
    one = T.lookup(str(path), archs[3].to_dict(), 7)
    assert one == T.lookup(str(path), archs[3].to_dict(), 7)  # deterministic for a child seed
    assert one["params"] == 103
    assert one["val_acc"] == pytest.approx(0.53 + 0.001 * one["table_seed"])
    assert T.table_path(str(tmp_path)) == path
    with pytest.raises(DeepmorningError):
        T.table_path(str(tmp_path / "nothing"))


# -- helpers -----------------------------------------------------------------------------------
SKIPS = T.TableSpec(  # a table space with skip connections, so the anchor sampling is covered
    name="tiny-skips", description="2 layers, {1,3}x{1,3}, 4 or 8 filters, skips (tests)",
    layers=2, space=T._space((1, 3), (1, 3), (4, 8), True, 2),
    child={"epochs": 1, "batch_size": 64})


def fake_table(path, spec: T.TableSpec = SKIPS, seeds: int = 2, drop=()) -> str:
    """A table of ``spec`` with made-up rows (architecture quality q in [0, 1), seed noise),
    written as ``nas table build`` writes one; ``drop``: (arch, seed) rows left out."""
    archs = T.enumerate_architectures(spec.space, spec.layers)
    rng = random.Random(0)
    rows = []
    for i in range(len(archs)):
        q = rng.random()
        rows += [[i, s, round(0.3 + 0.6 * q + rng.gauss(0, 0.02), 4), round(0.3 + 0.6 * q, 4),
                  100 + i, 1.0] for s in range(seeds) if (i, s) not in drop]
    with gzip.open(path, "wt") as fh:
        json.dump({"manifest": T.manifest(spec, seeds, len(archs), 1.0), "rows": rows}, fh)
    return str(path)


def read_rows(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def read_table(path) -> dict:
    with gzip.open(path, "rt") as fh:
        return json.load(fh)


# -- building and checking a table -------------------------------------------------------------
def test_table_build_through_the_cli_and_resume_keep_every_row(tmp_path):
    """`nas table build --space tiny` builds the table on a real local Ray; a build stopped
    midway (rows lost) and then grown to two seeds with --resume keeps every row it had and
    trains only the missing ones."""
    out = tmp_path / "tiny"
    res = run_cli("nas", "table", "build", "--space", "tiny", "--seeds", "1", "--output",
                  str(out))
    assert res.returncode == 0, res.stderr
    table = read_table(out / T.TABLE_FILE)
    assert T.check_table(table) == {"architectures": 16, "seeds": 1, "rows": 16, "covered": 16,
                                    "missing_rows": 0}
    assert table["manifest"]["space"]["name"] == "tiny" and table["manifest"]["git_commit"]
    assert (out / "table.png").is_file()

    lines = (out / T.ROWS_FILE).read_text().splitlines(keepends=True)
    (out / T.ROWS_FILE).write_text("".join(lines[:11]))  # stopped after 10 of 16 children
    kept = read_rows(out / T.ROWS_FILE)
    res = run_cli("nas", "table", "build", "--resume", str(out), "--seeds", "2")
    assert res.returncode == 0, res.stderr
    assert "10 rows kept" in res.stdout
    rows = read_rows(out / T.ROWS_FILE)
    assert rows[:10] == kept  # kept as they were (their train seconds too): not trained again
    keys = [(r["arch"], r["seed"]) for r in rows]
    assert len(keys) == len(set(keys)) == 32  # each missing (arch, seed) trained once
    table = read_table(out / T.TABLE_FILE)
    assert T.check_table(table)["seeds"] == 2 and table["manifest"]["seeds"] == [0, 1]

    again = run_cli("nas", "table", "build", "--resume", str(out))
    assert again.returncode == 2 and "already finished" in again.stderr


def test_check_table_compares_a_table_with_its_space(tmp_path):
    table = read_table(fake_table(tmp_path / "t.json.gz"))
    assert T.check_table(table) == {"architectures": 128, "seeds": 2, "rows": 256,
                                    "covered": 128, "missing_rows": 0}
    broken = {**table, "rows": table["rows"][:-1] + [table["rows"][0]]}
    with pytest.raises(DeepmorningError, match="1 .* rows are repeated.*1 of 256 .* missing"):
        T.check_table(broken)
    wrong = {**table, "manifest": {**table["manifest"], "architectures": 100}}
    with pytest.raises(DeepmorningError, match="says 100 architectures"):
        T.check_table(wrong)
    partial = read_table(fake_table(tmp_path / "p.json.gz", drop={(3, 1)}))
    partial["manifest"]["partial"] = True  # an unfinished build's rows: missing is fine
    assert T.check_table(partial)["missing_rows"] == 1


def test_the_shipped_table_matches_its_space():
    path = T.SHIPPED_DIR / f"{T.DEFAULT_SPEC}.json.gz"
    if not path.is_file():
        pytest.skip("no shipped table in this checkout yet")
    table = read_table(path)
    counts = T.check_table(table)
    spec = T.get_spec(T.DEFAULT_SPEC)
    assert table["manifest"]["space"] == json.loads(json.dumps(spec.to_dict()))  # tuples: lists
    assert counts["missing_rows"] == 0 and counts["seeds"] >= 2


def test_the_shipped_table_ships_in_the_wheel_and_its_absence_is_one_line(monkeypatch,
                                                                          tmp_path):
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["deepmorning.nas"]
    assert any(fnmatch.fnmatch(f"tables/{T.DEFAULT_SPEC}.json.gz", g) for g in globs)
    monkeypatch.setattr(T, "SHIPPED_DIR", tmp_path)
    with pytest.raises(DeepmorningError) as err:
        T.table_path(None)
    assert "missing from this install" in str(err.value) and "\n" not in str(err.value)


def test_an_unfinished_build_is_a_partial_table(tmp_path):
    """`--table RUN_DIR` of a build still running: its rows.csv so far, checked, looked up."""
    run = tmp_path / "build"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"table_space": "tiny", "seeds": 2}))
    rows = [{"arch": i, "seed": 0, "val_acc": 0.5, "test_acc": 0.4, "params": 7, "seconds": 1}
            for i in range(16)]
    with (run / T.ROWS_FILE).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        fh.write("5,1,0.4")  # the row the build is writing right now: torn, left out
    path, spec, counts = T.usable_table(str(run))
    assert path == str(run) and spec.name == "tiny"
    assert counts == {"architectures": 16, "seeds": 2, "rows": 16, "covered": 16,
                      "missing_rows": 16}
    arch = T.enumerate_architectures(spec.space, spec.layers)[5]
    assert T.lookup(path, arch.to_dict(), 3)["table_seed"] == 0
    with (run / T.ROWS_FILE).open("w") as fh:
        fh.write("arch,seed,val_acc,test_acc,params,seconds\n0,0,0.5,0.4,7,1\n")
    T.load_table.cache_clear()
    with pytest.raises(DeepmorningError, match="no row yet for 15 of its 16"):
        T.usable_table(str(run))


# -- the table trainer and the comparison -------------------------------------------------------
TABLE_CHILD = """
import sys
from deepmorning.nas.task import ChildConfig, child_seed, run_child
cfg = ChildConfig(trainer="table:{path}@0.01", seed=4)
arch = {arch}
out = run_child(6, arch, None, cfg)
from deepmorning.nas.table import lookup
row = lookup("{path}", arch, child_seed(4, 6))
assert out["reward"] == row["val_acc"] ** 3 and out["val_acc"] == row["val_acc"], out
assert out["test_acc"] == row["test_acc"] and out["params"] == row["params"], out
assert out["seconds"] >= 0.01 and out["seed"] == child_seed(4, 6), out
print("torch" in sys.modules)
"""


def test_a_table_child_is_a_lookup_rewarded_like_a_trained_child_without_torch(tmp_path):
    import os
    import subprocess
    import sys

    path = fake_table(tmp_path / "t.json.gz")
    arch = T.enumerate_architectures(SKIPS.space, SKIPS.layers)[77].to_dict()
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", TABLE_CHILD.format(path=path, arch=arch)],
                         capture_output=True, text=True, cwd=root, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"  # a table child's worker stays torch-free


def test_a_table_search_searches_the_tables_space(tmp_path):
    from deepmorning.nas.config import NASConfig, quick, use_table_space

    path = fake_table(tmp_path / "t.json.gz")
    cfg = quick().to_dict()
    cfg["child"]["trainer"] = f"table:{path}@0.5"
    search = NASConfig.from_dict(use_table_space(cfg))
    assert search.space == SKIPS.search_space() and search.dataset == "strokes"
    assert all(search.space.num_layers(i) == 2 for i in (0, 10_000))
    quick_space = quick().to_dict()
    quick_space["child"]["trainer"] = f"table:{path}"
    with pytest.raises(DeepmorningError, match="must be the table's"):
        NASConfig.from_dict(quick_space)  # a space of its own: refused, one line
    with pytest.raises(DeepmorningError, match="SECONDS"):
        NASConfig.from_dict({**cfg, "child": {**cfg["child"], "trainer": f"table:{path}@x"}})


@pytest.mark.parametrize("strategy", ["rl-quick", "random"])
def test_nas_search_on_a_table_and_nas_compare_agree_child_by_child(ray_local, tmp_path,
                                                                    strategy):
    """One server, one replica, batches one after another: the real search (actors, journal)
    and the comparison's in-process loop sample the same architectures and get the same
    rewards and baselines, exactly (rl-quick is the quick preset's controller, as here)."""
    from deepmorning.nas import strategies as ST
    from deepmorning.nas.config import NASConfig, quick, use_table_space
    from deepmorning.nas.search import Search
    from deepmorning.platform.rundir import RunDir

    path = fake_table(tmp_path / "t.json.gz")
    cfg = quick().to_dict()
    cfg.update(max_children=11, param_servers=1, controllers=1, children_per_controller=3,
               seed=5, strategy="random" if strategy == "random" else "rl")
    cfg["child"]["trainer"] = f"table:{path}"
    cfg = NASConfig.from_dict(use_table_space(cfg))
    run = RunDir.create(tmp_path / "search", "nas", "search", cfg.to_dict())
    Search(cfg, run, resumed=False).run_search()
    history = sorted(read_rows(run.path / "history.csv"), key=lambda r: int(r["child_id"]))

    settings = ST.Settings(samples=11, children_per_batch=3, controller=quick().controller)
    ours = list(ST.run_strategy(strategy, path, SKIPS.search_space(), 5, settings))
    assert [json.loads(r["architecture"]) for r in history] == [c["arch"] for c in ours]
    assert [float(r["reward"]) for r in history] == [c["reward"] for c in ours]
    updates = [json.loads(line) for line in (run.checkpoints / "journal.jsonl").open()]
    updates = [e for e in updates if e["e"] == "update"]  # advantages and baseline per batch
    assert [a for e in updates for a in e["advantages"]] == [c["advantage"] for c in ours]
    assert [e["baseline"] for e in updates] == [c["baseline"] for c in ours[2::3] + ours[-1:]]
    assert len({json.dumps(c["arch"]) for c in ours}) > 3  # not one architecture over and over


def test_regularized_evolution_mutates_one_choice_of_a_population_member(tmp_path):
    from deepmorning.nas import strategies as ST
    from deepmorning.nas.space import Architecture

    path = fake_table(tmp_path / "t.json.gz")
    space = SKIPS.search_space()

    def choices(arch: dict) -> list:
        a = Architecture.from_dict(arch)
        return [(layer.filter_height, layer.filter_width, layer.num_filters, j in layer.inputs)
                for layer in a.layers for j in range(len(a))]

    rng = random.Random(1)
    for arch in T.enumerate_architectures(SKIPS.space, SKIPS.layers)[::9]:
        child = ST.mutate(arch, space, rng)
        assert child.is_valid(space)
        flat = [x for layer in choices(child.to_dict()) for x in layer]
        parent = [x for layer in choices(arch.to_dict()) for x in layer]
        assert child != arch and sum(a != b for a, b in zip(flat, parent, strict=True)) <= 2
    settings = ST.Settings(samples=40, population=8, sample_size=3)
    kids = list(ST.run_evolution(path, space, 2, settings))
    assert kids == list(ST.run_evolution(path, space, 2, settings))  # the seed decides all
    for k in range(8, 40):
        population = [Architecture.from_dict(c["arch"]) for c in kids[k - 8:k]]
        arch = Architecture.from_dict(kids[k]["arch"])
        assert any(_one_choice_apart(arch, p) for p in population), k


def _one_choice_apart(a, b) -> bool:
    diffs = 0
    for x, y in zip(a.layers, b.layers, strict=True):
        diffs += sum(getattr(x, f) != getattr(y, f)
                     for f in ("filter_height", "filter_width", "num_filters"))
        diffs += len(set(x.inputs) ^ set(y.inputs))
    return diffs == 1


def test_nas_compare_on_the_tiny_table(tmp_path, capsys):
    from deepmorning.cli import main

    path = fake_table(tmp_path / "t.json.gz", spec=T.get_spec("tiny"))
    out = tmp_path / "compare"
    main(["nas", "compare", "--table", path, "--strategies", "rl,rl-quick,random,evolution",
          "--seeds", "3", "--samples", "30", "-m", "2", "--population", "6",
          "--sample-size", "3", "--output", str(out)])
    shown = capsys.readouterr().out
    assert "paired by seed" in shown and "evolution - random" in shown
    rows = read_rows(out / "rows.csv")
    assert len(rows) == 4 * 3 * 30
    assert {(r["strategy"], r["seed"]) for r in rows} == {
        (s, str(k)) for s in ("rl", "rl-quick", "random", "evolution") for k in range(3)}
    assert all(float(r["regret"]) >= 0 for r in rows)
    for name in ("topk.png", "regret.png", "summary.json", "config.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["paired"]) == {"rl - random", "rl-quick - random", "evolution - random"}
    assert set(summary["finals"]["rl"]) == {"30"}
    assert set(summary["paired"]["rl - random"]) == {"top5_reward", "regret",
                                                     "mean_reward_recent"}
    # paired by seed: child k of a seed draws the same table seed whatever samples it
    by = {(r["strategy"], r["seed"], r["child_id"]): r["table_seed"] for r in rows}
    assert all(by[("random", s, c)] == by[("evolution", s, c)]
               for (_, s, c) in by if _ == "rl")


@pytest.mark.parametrize("args, fragment", [
    (["nas", "compare", "--table", "/no/such/table"], "/no/such/table"),
    (["nas", "compare", "--strategies", "rl,hill-climbing", "--table", "x"], "hill-climbing"),
    (["nas", "search", "--trainer", "table:/no/such/table"], "/no/such/table"),
])
def test_bad_table_input_is_one_line(args, fragment, capsys):
    from deepmorning.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert exit_.value.code == 2 and len(errors) == 1 and fragment in errors[0], err


def test_compare_gives_the_same_runs_in_worker_processes(tmp_path):
    from deepmorning.nas import strategies as ST

    path = fake_table(tmp_path / "t.json.gz", spec=T.get_spec("tiny"))
    settings = ST.Settings(samples=12, children_per_batch=2, population=4, sample_size=2)
    runs: dict[int, list] = {1: [], 2: []}
    for workers in (1, 2):
        ST.compare(path, ["rl", "random", "evolution"], [0, 1, 2], settings,
                   lambda s, seed, kids, w=workers: runs[w].append((s, seed, kids)), workers)
    assert runs[1] == runs[2] and [(s, k) for s, k, _ in runs[1]][:4] == [
        ("rl", 0), ("random", 0), ("evolution", 0), ("rl", 1)]
