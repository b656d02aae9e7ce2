"""The real images `gen train` learns from, and the order it draws them in.

Only the TRAIN split of the manifest, only the requested classes (design rule: the GAN never
sees val/test). Images come from the data layer's uint8 cache and stay uint8 in memory;
a batch is converted to [-1, 1] floats on the training device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from classify.core.errors import UserError
from classify.data.dataset import open_prepared
from gen.train.config import GanTrainConfig


@dataclass
class GanTrainData:
    images: torch.Tensor  # uint8 [N, C, R, R]
    labels: torch.Tensor  # int64 [N], index into `classes` (the run's class order, not the manifest's)
    classes: list[str]
    real_counts: dict[str, int]
    manifest_hash: str
    channels: int
    # One class = an unconditional model of it; several = one-hot conditioning, unless pooled
    # (transfer's pre-training: one unconditional model of every class's images together).
    pooled: bool = False
    seen_md5: dict[str, list[str]] = field(default_factory=dict)  # class -> md5 of every train image used
    fit: str = "crop"  # how non-square images became square (the resolved --fit)
    # class -> what --orient auto turned (see orientation_plan)
    orient: dict[str, dict] = field(default_factory=dict)

    @property
    def c_dim(self) -> int:
        return len(self.classes) if len(self.classes) > 1 and not self.pooled else 0

    @property
    def generator_classes(self) -> list[str]:
        """The names of the generator's outputs: its classes in label order, or the one pooled set."""
        return ["+".join(self.classes)] if self.pooled else list(self.classes)

    def one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        if self.c_dim == 0:
            return torch.zeros([len(labels), 0])
        return torch.nn.functional.one_hot(labels, self.c_dim).float()

    def summary(self) -> str:
        counts = ", ".join(f"{k}: {v}" for k, v in self.real_counts.items())
        n, c, h, w = self.images.shape
        kind = (f"conditional ({self.c_dim} classes)" if self.c_dim else
                "unconditional, classes pooled" if self.pooled else "unconditional")
        turned = "; ".join(f"{k}: {v['n_turned']} {v['turned']} turned a quarter"
                           for k, v in self.orient.items())
        return (f"{n} train images ({counts}), {c} channel(s), {h}x{w}, {kind}"
                + (f"; one layout ({turned})" if turned else ""))


def training_classes(cfg: GanTrainConfig, data_classes: list[str]) -> tuple[list[str], bool]:
    """(classes the run's stage learns, pooled?) for the recipe (`gen.train.recipes`)."""
    if cfg.recipe == "conditional" or (cfg.recipe == "transfer" and cfg.stage == "pretrain"):
        return list(data_classes), cfg.recipe == "transfer"
    return list(cfg.classes), False


def load_gan_train_data(cfg: GanTrainConfig) -> GanTrainData:
    """Read the train split of the classes the recipe's stage learns; clear errors for unusable requests."""
    if not cfg.classes:
        raise UserError("no --class given; name the class(es) to train on, e.g. --class defective")
    data = open_prepared(cfg.data_dir)
    missing = [c for c in cfg.classes if c not in data.classes]
    if missing:
        raise UserError(
            f"unknown class {', '.join(missing)} in {data.root}/manifest.csv; "
            f"available: {', '.join(data.classes)}"
        )
    classes, pooled = training_classes(cfg, data.classes)
    sel = data.select(split="train", classes=classes)
    manifest_ids = [data.classes.index(c) for c in classes]
    remap = {mid: i for i, mid in enumerate(manifest_ids)}
    labels = torch.tensor([remap[int(v)] for v in sel.labels], dtype=torch.int64)
    counts = {c: int((labels == i).sum()) for i, c in enumerate(classes)}
    # Batches draw from every image the run learns; a class with none cannot be learned.
    for name, n in (counts.items() if len(classes) == 1 else [("+".join(classes), len(labels))]):
        if n < cfg.batch:
            raise UserError(
                f"class {name!r} has {n} train images in {data.root}/manifest.csv, fewer than "
                f"--batch {cfg.batch}; use --batch {_largest_pow2_at_most(max(n, 1))} or smaller"
            )
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise UserError(f"class {', '.join(empty)} has no train images in {data.root}/manifest.csv; "
                        "it cannot be learned (pick the --class / --recipe that leaves it out)")
    seen = {c: sorted(row["md5"] for row, lab in zip(sel.rows, labels.tolist()) if lab == i)
            for i, c in enumerate(classes)}
    images = sel.images(res=cfg.res, channels=cfg.channels, fit=cfg.fit)
    orient = orientation_plan(sel.rows, labels, classes) if cfg.orient == "auto" else {}
    images = turn_to_one_layout(images, sel.rows, labels, classes, orient)
    if pooled:
        labels = torch.zeros_like(labels)
    return GanTrainData(images, labels, classes, counts, data.manifest_hash, int(images.shape[1]), pooled,
                        seen, data.resolve_fit(cfg.fit), orient)


# Long side / short side above this counts as portrait or landscape; squarer images are left alone.
ELONGATED = 1.1


def _layout(row: dict) -> str:
    w, h = int(row["width"]), int(row["height"])
    return "portrait" if h > ELONGATED * w else "landscape" if w > ELONGATED * h else "square"


def orientation_plan(rows: list[dict], labels: torch.Tensor, classes: list[str]) -> dict[str, dict]:
    """Per class whose train images mix portrait and landscape: the layout of the fewer ones
    (`turned`, rotated by 90 degrees to the other), and the share of the class they are
    (`turned_share`, what `gen sample` turns back at random). Classes with one layout: absent."""
    plan = {}
    for i, name in enumerate(classes):
        layouts = [_layout(r) for r, lab in zip(rows, labels.tolist()) if lab == i]
        n_portrait, n_landscape = layouts.count("portrait"), layouts.count("landscape")
        if n_portrait and n_landscape:
            turned = "portrait" if n_portrait <= n_landscape else "landscape"
            n = min(n_portrait, n_landscape)
            plan[name] = {"turned": turned, "n_turned": n, "portrait": n_portrait, "landscape": n_landscape,
                          "turned_share": round(n / len(layouts), 6)}
    return plan


def turn_to_one_layout(images: torch.Tensor, rows: list[dict], labels: torch.Tensor, classes: list[str],
                       plan: dict[str, dict]) -> torch.Tensor:
    """Rotate the fitted squares of the `turned` layout by a quarter turn (counter-clockwise). A
    centre crop, a centred pad and a stretch all commute with the quarter turn, so this is the
    image turned before fitting."""
    if not plan:
        return images
    images = images.clone()
    for k, (row, lab) in enumerate(zip(rows, labels.tolist())):
        entry = plan.get(classes[lab])
        if entry and _layout(row) == entry["turned"]:
            images[k] = torch.rot90(images[k], 1, dims=(1, 2))
    return images


def _largest_pow2_at_most(n: int) -> int:
    return 1 << (n.bit_length() - 1)


class BatchSampler:
    """Shuffled passes over the data (x2 with --mirror), resumable from two integers.

    Every rank builds the same global batch from the same seed and takes a strided slice
    (rank r gets items r, r+W, ...). Strided rather than contiguous because the
    discriminator's minibatch-stddev groups sample i with i mod (N/G): with G = N/W the
    per-rank groups are then exactly the single-process groups.
    """

    def __init__(self, n_items: int, mirror: bool, seed: int, epoch: int = 0, pos: int = 0):
        self.n_items, self.mirror, self.seed = n_items, mirror, seed
        self.epoch, self.pos = epoch, pos
        self._order = self._permutation()

    def _permutation(self) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.n_items * (2 if self.mirror else 1), generator=gen)

    def next_indices(self, batch: int) -> torch.Tensor:
        out = []
        while len(out) < batch:
            if self.pos >= len(self._order):
                self.epoch, self.pos = self.epoch + 1, 0
                self._order = self._permutation()
            take = min(batch - len(out), len(self._order) - self.pos)
            out.extend(self._order[self.pos : self.pos + take].tolist())
            self.pos += take
        return torch.tensor(out, dtype=torch.int64)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, d: dict[str, int]) -> None:
        self.epoch, self.pos = int(d["epoch"]), int(d["pos"])
        self._order = self._permutation()


def real_batch(data: GanTrainData, idx: torch.Tensor,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (>= N means the mirrored copy) -> float images in [-1, 1] and one-hot labels."""
    n = len(data.images)
    flip = idx >= n
    base = idx % n
    img = data.images[base].to(device).float().div_(127.5).sub_(1.0)
    if flip.any():
        img[flip.to(device)] = img[flip.to(device)].flip(3)
    return img, data.one_hot(data.labels[base]).to(device)
