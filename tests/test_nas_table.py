"""The tabular benchmark's space enumeration and lookup (deepmorning.nas.table)."""

from __future__ import annotations

import gzip
import json
import random

import pytest

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
