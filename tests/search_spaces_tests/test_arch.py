from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from search_spaces import Arch, LayerArch, StageArch, get_space, list_spaces


@pytest.mark.parametrize("name", list_spaces())
def test_json_round_trip_and_schema(name, rng):
    space = get_space(name)
    for arch in [space.smallest(), space.largest()] + [space.sample(rng) for _ in range(20)]:
        text = arch.to_json()
        assert isinstance(text, str)
        assert Arch.from_json(text) == arch
        data = json.loads(text)
        assert set(data) == ({"resolution", "stages"} if space.stem is None
                             else {"resolution", "stem", "stages"})
        for stage in data["stages"]:
            assert set(stage) == {"depth", "width", "layers"}
            assert len(stage["layers"]) == stage["depth"]
        assert hash(Arch.from_json(text)) == hash(arch)
        assert arch.label()


def test_key_is_stable_in_a_fresh_process():
    space = get_space("hybrid_vit_tiny")
    archs = [space.sample(np.random.default_rng(i)) for i in range(5)]
    code = (
        "import sys, json\n"
        "from search_spaces import Arch\n"
        "for line in sys.stdin: print(Arch.from_json(line.strip()).key())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], input="\n".join(a.to_json() for a in archs),
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [a.key() for a in archs]
    assert len(set(out)) == 5


def test_float_ratio_canonicalised():
    a = Arch.from_dict({"resolution": 16, "stages": [{"depth": 1, "width": 32, "layers": [
        {"mixer": "glu_mlp", "hidden_ratio": 2.0}]}]})
    b = Arch.from_dict({"resolution": 16, "stages": [{"depth": 1, "width": 32, "layers": [
        {"mixer": "glu_mlp", "hidden_ratio": 2}]}]})
    assert a.key() == b.key()


def _arch_dict(space, rng):
    return json.loads(space.sample(rng).to_json())


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d["stages"][0]["layers"][0].update(mixer="lstm"), "stages[0].layers[0].mixer"),
    (lambda d: d["stages"][1].update(width=7), "stages[1].width"),
    (lambda d: (d["stages"][0].update(depth=9),
                d["stages"][0].update(layers=d["stages"][0]["layers"] * 9)), "stages[0].depth"),
    (lambda d: d["stages"][0]["layers"].append({"mixer": "ssm"}), "stages[0].layers"),
    (lambda d: d.update(resolution=17), "resolution"),
    (lambda d: d["stages"][0]["layers"][0].update(mixer="conv", kernel_size=4),
     "stages[0].layers[0].kernel_size"),
    (lambda d: d["stages"].pop(), "stages"),
])
def test_invalid_arch_names_the_field(mutate, field):
    space = get_space("hybrid_vit_tiny")
    data = _arch_dict(space, np.random.default_rng(3))
    data["stages"][0]["layers"] = [{"mixer": "conv", "kernel_size": 3}]
    data["stages"][0]["depth"] = 1
    mutate(data)
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        space.validate(Arch.from_dict(data))


def test_layer_knobs_checked():
    with pytest.raises(ValueError, match="hidden_ratio"):
        LayerArch("glu_mlp")
    with pytest.raises(ValueError, match="kernel_size"):
        LayerArch("attention", kernel_size=3)
    with pytest.raises(ValueError, match="depth"):
        StageArch(depth=2, width=32, layers=(LayerArch("ssm"),))
    with pytest.raises(ValueError, match=r"unexpected field"):
        Arch.from_dict({"resolution": 16, "stages": [{"depth": 1, "width": 32, "layers": [
            {"mixer": "ssm", "kernel_size": 3}]}]})
    with pytest.raises(ValueError, match="arch JSON"):
        Arch.from_json("{not json")
