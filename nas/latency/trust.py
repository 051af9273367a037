"""How far a latency table can be trusted: its validation against whole models, read as one
verdict (`latency_trust`) that `nas profile`, `nas run`, the model card and the app show.

Pure Python: importable without torch (the app and the export read stored validations).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


def _metrics_text(m: Mapping[str, Any]) -> str:
    return (f"MAPE {100 * m['mape']:.1f} %, within +-10 % {100 * m['within10']:.0f} %, "
            f"Kendall {m['kendall']:.3f} (n={m['n']})")


def validation_line(result: dict) -> str:
    """``calibrated: MAPE 3.1 %, within +-10 % 96 %, Kendall 0.93 (n=30) | naive: ... |
    repeat ceiling (same models measured twice): ...``."""
    parts = [f"{name}: {_metrics_text(result[name])}" for name in ("calibrated", "naive")
             if name in result]
    if isinstance(result.get("repeat"), dict):
        parts.append(f"repeat ceiling (same models measured twice): "
                     f"{_metrics_text(result['repeat'])}")
    else:
        parts.append("repeat ceiling: not measured")
    return " | ".join(parts)


MIN_WITHIN10 = 0.8  # share of models a trusted table predicts within +-10 %
CEILING_SLACK = 0.1  # how far below the repeat ceiling (share within +-10 %) is "worse"

TRUST_ADVICE = (
    "run it on an idle machine (other jobs shift every timing)",
    "pin the process to one core: `taskset -c 1 <the profile command>`",
    "use fewer threads: `--threads 1` for `python -m nas.latency.profile`, or OMP_NUM_THREADS=1",
    "spread the measurements over longer: `--spread 30` for `python -m nas.latency.profile`, or "
    "`ProfilingConfig(min_block_s=30)` in the study",
)


@dataclass(frozen=True)
class LatencyTrust:
    """How far a latency table's predictions can be trusted (`latency_trust`).

    ``status``: ``trusted``, ``unreliable`` or ``unvalidated`` (never checked against whole
    models). ``within10`` / ``mape`` are the table's own validation (calibrated when it has
    a calibration); ``repeat_within10`` / ``repeat_mape`` the machine's repeat ceiling, None
    when it was not measured. ``reasons`` say what is wrong; ``advice`` what to do.
    """

    status: str
    prediction: str = ""
    within10: float | None = None
    mape: float | None = None
    repeat_within10: float | None = None
    repeat_mape: float | None = None
    reasons: tuple[str, ...] = ()
    advice: tuple[str, ...] = ()

    @property
    def trusted(self) -> bool:
        return self.status == "trusted"

    def summary(self) -> str:
        """One line: the verdict, the table's validation and the repeat ceiling."""
        if self.status == "unvalidated":
            return "latency table not validated against whole models: its error is unknown"
        ceiling = ("repeat ceiling not measured" if self.repeat_within10 is None else
                   f"this machine repeats within +-10 % for "
                   f"{100 * self.repeat_within10:.0f} % of models")
        assert self.within10 is not None and self.mape is not None  # set once validated
        head = "trusted" if self.trusted else "UNRELIABLE"
        return (f"latency table {head}: {self.prediction} prediction within +-10 % for "
                f"{100 * self.within10:.0f} % of models (MAPE {100 * self.mape:.1f} %); "
                f"{ceiling}")

    def lines(self) -> list[str]:
        """The summary, then (unless trusted) each reason and each piece of advice."""
        out = [self.summary()]
        if not self.trusted:
            out += [f"  - {r}" for r in self.reasons]
            if self.advice:
                out.append("  to measure a better table:")
                out += [f"  - {a}" for a in self.advice]
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyTrust:
        """The verdict from `to_dict` (a model card's, read back from JSON)."""
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                  for k, v in data.items()}
        return cls(**fields)


def latency_trust(validation: Mapping[str, Any] | None, *,
                  min_within10: float = MIN_WITHIN10,
                  slack: float = CEILING_SLACK) -> LatencyTrust:
    """The verdict on a table from its stored ``validation`` (``naive`` / ``calibrated`` /
    ``repeat`` metrics, as `calibrate_and_validate` leaves them).

    Unreliable when the table predicts fewer than ``min_within10`` of the validation models
    within +-10 %, or when its share within +-10 % is more than ``slack`` below the
    machine's repeat ceiling (the same models measured twice): then the table, not the
    machine, loses accuracy. The one verdict `nas profile`, `nas run`, the model card and
    the app show.
    """
    if not 0 < min_within10 <= 1 or not 0 <= slack < 1:
        raise ValueError(f"min_within10 must be in (0, 1] and slack in [0, 1), got "
                         f"{min_within10} and {slack}")
    validation = validation or {}
    prediction = next((k for k in ("calibrated", "naive") if isinstance(validation.get(k),
                                                                         dict)), None)
    if prediction is None:
        return LatencyTrust("unvalidated", reasons=("no validation against whole models",),
                            advice=("profile it again with `nas profile STUDY` (it validates "
                                    "on whole models)",))
    m = validation[prediction]
    within, mape = float(m["within10"]), float(m["mape"])
    rep = validation.get("repeat") if isinstance(validation.get("repeat"), dict) else None
    rep_within = None if rep is None else float(rep["within10"])
    rep_mape = None if rep is None else float(rep["mape"])
    reasons = []
    if within < min_within10:
        reasons.append(f"it predicts only {100 * within:.0f} % of the validation models within "
                       f"+-10 % (a trusted table: {100 * min_within10:.0f} %)")
    if rep_within is not None and within < rep_within - slack:
        reasons.append(f"it is worse than this machine's repeat ceiling: the same models "
                       f"measured twice agree within +-10 % for {100 * rep_within:.0f} %, the "
                       f"table for {100 * within:.0f} %")
    if rep_within is not None and rep_within < min_within10:
        reasons.append(f"this machine does not repeat its own measurements: only "
                       f"{100 * rep_within:.0f} % of the models measured twice agree within "
                       "+-10 % (a busy or throttled machine)")
    status = "unreliable" if reasons else "trusted"
    if reasons and rep_within is None:
        reasons.append("the machine's repeat ceiling was not measured, so whether the machine "
                       "or the table is at fault is unknown (profile again to measure it)")
    return LatencyTrust(status, prediction=prediction, within10=within, mape=mape,
                        repeat_within10=rep_within, repeat_mape=rep_mape,
                        reasons=tuple(reasons),
                        advice=TRUST_ADVICE if status == "unreliable" else ())


__all__ = ["CEILING_SLACK", "MIN_WITHIN10", "TRUST_ADVICE", "LatencyTrust", "latency_trust",
           "validation_line"]
