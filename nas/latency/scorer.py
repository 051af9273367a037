"""Arch -> predicted latency, fast enough for search (millions of calls).

`space.layers(arch)` builds and validates a dozen frozen spec objects per arch and hashes
their JSON signatures: correct, but slow. Every layer of an arch is fixed by a small *slot*
key instead (the space's slot table, `SearchSpace.layer_slots`: stem: input (resolution,
stem) and first width; downsample: input, stage, both widths; mixer: input, stage, width and
the `LayerArch`; head: input and last width), so `ArchLatencyScorer` looks each slot's table
entry up once, up front, and scores an arch with a dozen dict lookups. It sums the entries
in layer order, exactly as `LatencyTable.predict(space.layers(arch))` does, so both paths
give the same float.

Example::

    scorer = ArchLatencyScorer(space, table)
    ms = scorer.predict_many(archs)  # numpy array, one latency per arch
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from kernels import signature
from kernels.fingerprint import DeviceFingerprint
from kernels.latency_table import LatencyTable, LatencyTableError, MissingLayerError
from search_spaces import Arch, SearchSpace
from search_spaces.arch import LayerArch


def reference_latency(space: SearchSpace, table: LatencyTable, arch: Arch, *,
                      naive: bool = False) -> float:
    """The plain path: ``table.predict(space.layers(arch))`` (validates the arch)."""
    return table.predict(space.layers(arch), naive=naive)


class ArchLatencyScorer:
    """Predicted latency (ms) of archs of one space from one table, without building specs.

    ``naive=True`` returns the plain sum of entries; otherwise the table's calibration is
    applied (the table must have one). With ``fingerprint``, a table measured elsewhere is
    refused (`FingerprintMismatchError`). An arch with a layer the table lacks, or a depth /
    stage count outside the space, raises `MissingLayerError` / ValueError, never a guess.
    """

    def __init__(self, space: SearchSpace, table: LatencyTable, *, naive: bool = False,
                 fingerprint: DeviceFingerprint | None = None) -> None:
        table.check(fingerprint)
        if not naive and table.calibration is None:
            raise LatencyTableError("latency table has no calibration: calibrate it on "
                                    "measured models (nas.latency.profile), or use naive=True")
        self.space, self.table, self.naive = space, table, naive
        self._stem: dict[tuple, float] = {}
        self._down: dict[tuple, float] = {}
        self._head: dict[tuple, float] = {}
        self._mixers: dict[tuple, dict[LayerArch, float]] = {}
        singles = {"stem": self._stem, "downsample": self._down, "head": self._head}
        entries = table.entries
        for key, spec in space.layer_slots():
            entry = entries.get(signature(spec))
            if entry is None:
                continue  # looked up lazily: only an arch that uses this slot fails
            kind, rest = key[0], key[1:]
            if kind == "mixer":
                self._mixers.setdefault(rest[:3], {})[rest[3]] = entry.median_ms
            else:
                singles[kind][rest] = entry.median_ms
        self._depths = [frozenset(stage.depth) for stage in space.stages]

    def layer_sum(self, arch: Arch) -> tuple[float, int]:
        """(sum of entry medians in layer order, number of layers) of one arch."""
        stages = arch.stages
        if len(stages) != len(self._depths):
            raise ValueError(f"stages: arch has {len(stages)} stages, space "
                             f"{self.space.name!r} has {len(self._depths)}")
        r = arch.input_key
        try:
            prev = stages[0].width
            total = 0.0 + self._stem[(r, prev)]
            n = 2
            for i, s in enumerate(stages):
                if s.depth not in self._depths[i] or len(s.layers) != s.depth:
                    raise ValueError(f"stages[{i}].depth: {s.depth} not allowed in space "
                                     f"{self.space.name!r}")
                if i:
                    total += self._down[(r, i, prev, s.width)]
                    n += 1
                row = self._mixers[(r, i, s.width)]
                for layer in s.layers:
                    total += row[layer]
                n += s.depth
                prev = s.width
            total += self._head[(r, prev)]
        except KeyError:
            self.space.layers(arch)  # names the field outside the space, if there is one
            raise MissingLayerError(f"arch {arch.label()} has a layer that is not in the "
                                    f"latency table ({len(self.table)} entries)") from None
        return total, n

    def predict(self, arch: Arch) -> float:
        total, n = self.layer_sum(arch)
        return self.table.compose(total, n, naive=self.naive)

    def predict_many(self, archs: Iterable[Arch]) -> np.ndarray:
        """One predicted latency (ms) per arch, as a float64 array."""
        layer_sum, compose, naive = self.layer_sum, self.table.compose, self.naive
        return np.fromiter((compose(*layer_sum(a), naive=naive) for a in archs),
                           dtype=np.float64)
