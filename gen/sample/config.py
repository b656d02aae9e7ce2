"""`SampleConfig`: every setting of one `gen sample` run. Apart from the runner so that the command
line builds its options from these fields without loading the scorers (torch-fidelity)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from classify.core.configs import Config, setting
from gen.sample.filters import FilterConfig
from gen.sample.sampling import PRECISIONS


def _extractor_names() -> list[str]:
    # Deferred: --help and --features read the names; torch-fidelity loads only then.
    from gen.core.metrics import EXTRACTORS  # noqa: PLC0415 — loads torch-fidelity

    return list(EXTRACTORS)


@dataclass
class SampleConfig(Config):
    """Every setting of `gen sample` but the filters'; its options are built from these fields."""

    config_name = "sample settings"
    renamed = {"out": "out_dir", "data": "data_dir"}

    generator: str
    out_dir: str = setting(help="SAMPLES_DIR to write (or resume).", flag="--out", path="dir")
    n: int | None = setting(None, "Number of samples (seeds 0..N-1) unless --seeds is given.")
    seeds: str | None = setting(None, "Seeds: A-B (inclusive), A,B,C or 0-9,20.")
    snapshot: str = setting("best", "best, latest or a kimg number (run folders).")
    class_name: str | None = setting(None, "Class to sample; all: every class in proportion to its real "
                                     "train images (a conditional generator; what --synthetic-classes all "
                                     "draws from); default: round-robin over the classes.", flag="--class")
    trunc: float = setting(1.0, "Truncation psi.")
    batch: int = setting(32, "Images per generator and judge pass.")
    device: str = setting("cpu", "cpu, cuda, cuda:N or auto (cuda when available).", cli_default="auto")
    precision: str = setting("fp32", choices=tuple(PRECISIONS))
    judge: str | None = setting(None, "model.pt from `classify train` (train split only).", path="any")
    inception_weights: str | None = setting(None, "Local Inception .pth for fid/kid.", path="any")
    # "judge" | "inception"; default: judge if given, else inception
    features: str | None = setting(None, "Features for realism/memorisation/metrics (default: judge if "
                                   "given).", choices=_extractor_names)
    # Overrides the data_dir recorded in the generator.
    data_dir: str | None = setting(None, "Data folder of the generator (default: from its info).",
                                   flag="--data", path="any")
    resize_to: str | None = setting(None, "Also write samples resized to WxH (e.g. 300x300) for training.")
    # Samples ruled out by hand (seed or file per line): rejected_by=manual.
    exclude: str | None = setting(None, "Samples ruled out by hand: one seed or sample file per line "
                                  "(browse.html's exclude.txt); they are rejected as 'manual' in samples.csv "
                                  "and counted in the filter report.", path="file")
    filters: FilterConfig = field(default_factory=FilterConfig)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SampleConfig:
        """The base's reading, with the nested filter settings read as a FilterConfig."""
        d = dict(d)
        if isinstance(d.get("filters"), dict):
            d["filters"] = FilterConfig.from_dict(d["filters"])
        return super().from_dict(d)
