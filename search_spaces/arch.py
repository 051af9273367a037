"""`Arch`: one concrete subnet of a search space, the stored form of every result.

JSON schema (fixed; the database and every other package rely on it)::

    {"resolution": int, ["stem": str,]
     "stages": [{"depth": int, "width": int,
                 "layers": [{"mixer": str, ...knob: value}]}]}

with exactly ``depth`` layers per stage. ``stem`` is present only in spaces with a stem
choice (``"patch"``, ``"conv_s1"``, ``"conv_s2"``...); an arch of a space without one has no
``stem`` field, so its JSON and ``key()`` are what they were before stems were searchable.
Knobs: ``hidden_ratio`` (glu_mlp only) and ``kernel_size`` (conv only); attention and ssm
have none.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from kernels.specs import MIXERS

KNOBS: dict[str, tuple[str, ...]] = {
    "attention": (),
    "glu_mlp": ("hidden_ratio",),
    "ssm": (),
    "conv": ("kernel_size",),
}
_ABBREV = {"attention": "A", "glu_mlp": "G", "ssm": "S", "conv": "C"}


def _canonical_number(value: Any, field: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{field}: expected a number, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{field}: expected an int, got {value!r}")
    return value


@dataclass(frozen=True)
class LayerArch:
    """One layer: its mixer and that mixer's knob (None where the mixer has none)."""

    mixer: str
    hidden_ratio: int | float | None = None
    kernel_size: int | None = None

    def __post_init__(self) -> None:
        if self.mixer not in MIXERS:
            raise ValueError(f"mixer: {self.mixer!r} is not one of {MIXERS}")
        for knob in ("hidden_ratio", "kernel_size"):
            present = getattr(self, knob) is not None
            if present != (knob in KNOBS[self.mixer]):
                verb = "needs" if not present else "takes no"
                raise ValueError(f"{knob}: mixer {self.mixer!r} {verb} {knob}")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mixer": self.mixer}
        for knob in KNOBS[self.mixer]:
            d[knob] = getattr(self, knob)
        return d

    @classmethod
    def from_dict(cls, data: Any, where: str = "layer") -> LayerArch:
        if not isinstance(data, dict) or "mixer" not in data:
            raise ValueError(f"{where}: expected an object with a 'mixer', got {data!r}")
        mixer = data["mixer"]
        if mixer not in MIXERS:
            raise ValueError(f"{where}.mixer: {mixer!r} is not one of {MIXERS}")
        extra = set(data) - {"mixer", *KNOBS[mixer]}
        if extra:
            raise ValueError(f"{where}: unexpected field(s) {sorted(extra)} for mixer {mixer!r}")
        kw: dict[str, Any] = {}
        for knob in KNOBS[mixer]:
            if knob not in data:
                raise ValueError(f"{where}.{knob}: missing for mixer {mixer!r}")
            value = _canonical_number(data[knob], f"{where}.{knob}")
            kw[knob] = _int(value, f"{where}.{knob}") if knob == "kernel_size" else value
        return cls(mixer=mixer, **kw)

    def label(self) -> str:
        knob = self.hidden_ratio if self.mixer == "glu_mlp" else self.kernel_size
        return _ABBREV[self.mixer] + ("" if knob is None else f"{knob:g}")


@dataclass(frozen=True)
class StageArch:
    """One stage: ``depth`` layers at residual width ``width``."""

    depth: int
    width: int
    layers: tuple[LayerArch, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.layers, tuple):
            object.__setattr__(self, "layers", tuple(self.layers))
        if self.depth != len(self.layers):
            raise ValueError(f"depth: {self.depth} but the stage lists {len(self.layers)} layers")

    def to_dict(self) -> dict[str, Any]:
        return {"depth": self.depth, "width": self.width,
                "layers": [layer.to_dict() for layer in self.layers]}


@dataclass(frozen=True)
class Arch:
    """A concrete subnet: frozen, hashable, JSON round-trip, stable ``key()``.

    Example::

        arch = space.sample(np.random.default_rng(0))
        assert Arch.from_json(arch.to_json()) == arch
    """

    resolution: int
    stages: tuple[StageArch, ...]
    stem: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.stages, tuple):
            object.__setattr__(self, "stages", tuple(self.stages))
        if self.stem is not None and not isinstance(self.stem, str):
            raise ValueError(f"stem: expected a string, got {self.stem!r}")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"resolution": self.resolution}
        if self.stem is not None:
            d["stem"] = self.stem
        d["stages"] = [s.to_dict() for s in self.stages]
        return d

    @property
    def input_key(self) -> tuple[int, str | None]:
        """``(resolution, stem)``: what fixes the token grid of every stage."""
        return self.resolution, self.stem

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces): the stored form and the input of key()."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Any) -> Arch:
        """Parse the JSON schema; raises ValueError naming the first bad field."""
        if not isinstance(data, dict):
            raise ValueError(f"arch: expected an object, got {type(data).__name__}")
        extra = set(data) - {"resolution", "stages", "stem"}
        if extra:
            raise ValueError(f"arch: unexpected field(s) {sorted(extra)}")
        stem = data.get("stem")
        if stem is not None and not isinstance(stem, str):
            raise ValueError(f"stem: expected a string, got {stem!r}")
        for name in ("resolution", "stages"):
            if name not in data:
                raise ValueError(f"{name}: missing")
        resolution = _int(data["resolution"], "resolution")
        if not isinstance(data["stages"], list) or not data["stages"]:
            raise ValueError(f"stages: expected a non-empty list, got {data['stages']!r}")
        stages = []
        for i, s in enumerate(data["stages"]):
            where = f"stages[{i}]"
            if not isinstance(s, dict):
                raise ValueError(f"{where}: expected an object, got {s!r}")
            extra = set(s) - {"depth", "width", "layers"}
            if extra:
                raise ValueError(f"{where}: unexpected field(s) {sorted(extra)}")
            for name in ("depth", "width", "layers"):
                if name not in s:
                    raise ValueError(f"{where}.{name}: missing")
            depth = _int(s["depth"], f"{where}.depth")
            width = _int(s["width"], f"{where}.width")
            if not isinstance(s["layers"], list):
                raise ValueError(f"{where}.layers: expected a list, got {s['layers']!r}")
            if len(s["layers"]) != depth:
                raise ValueError(
                    f"{where}.layers: has {len(s['layers'])} layers but depth is {depth}")
            layers = tuple(LayerArch.from_dict(layer, f"{where}.layers[{j}]")
                           for j, layer in enumerate(s["layers"]))
            stages.append(StageArch(depth=depth, width=width, layers=layers))
        return cls(resolution=resolution, stages=tuple(stages), stem=stem)

    @classmethod
    def from_json(cls, text: str) -> Arch:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"arch JSON: {exc}") from None
        return cls.from_dict(data)

    def key(self) -> str:
        """Hash of the canonical JSON: identical across processes and machines."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def label(self) -> str:
        """Short readable form, e.g. ``r32 | 64: C5 G3 | 128: A S`` (``r28 conv_s1 | ...``
        with a stem choice)."""
        parts = [f"r{self.resolution}" + ("" if self.stem is None else f" {self.stem}")]
        parts += [f"{s.width}: " + " ".join(layer.label() for layer in s.layers)
                  for s in self.stages]
        return " | ".join(parts)

    @property
    def depth(self) -> int:
        return sum(s.depth for s in self.stages)
