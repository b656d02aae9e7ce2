"""`gen import-pkl FILE.pkl OUT.safetensors`: a reference StyleGAN2-ADA snapshot -> our generator file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from classify.core.errors import UserError
from gen.core.errors import user_errors


def imported_info(ckpt: Any, classes: list[str]) -> dict[str, Any]:
    """The generator file's `info` for an imported snapshot: what we know, None where we don't."""
    cfg = ckpt.G_config
    kimg = re.search(r"network-snapshot-(\d+)", ckpt.path.name)
    return {
        "classes": classes,
        "res": cfg.img_resolution,
        "channels": cfg.img_channels,
        "fit": None,
        "kimg": int(kimg.group(1)) if kimg else None,
        "data_dir": None,
        "manifest_hash": None,
        # Unknown: the reference run trained on data we never saw; the leak guard must not assume zero.
        "real_counts": None,
        "imported_from": str(ckpt.path),
        "augment_p": ckpt.augment_p,
        "training_set_kwargs": ckpt.extras.get("training_set_kwargs"),
    }


def class_names(option: str | None, c_dim: int, path: Path) -> list[str]:
    """`--classes a,b,c` checked against the generator's label count; default '0', '1', …"""
    if option is None:
        return [str(i) for i in range(c_dim)]
    names = [n.strip() for n in option.split(",") if n.strip()]
    expected = max(c_dim, 1)
    if len(names) != expected or len(set(names)) != len(names):
        raise UserError(f"{path}: --classes needs {expected} distinct name(s) "
                        f"(the generator has c_dim={c_dim}), got {len(names)}")
    return names


@click.command("import-pkl")
@click.argument("pkl", type=click.Path(dir_okay=False))
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--classes", default=None,
              help="Comma-separated class names in label order (one name for an unconditional generator).")
@user_errors
def import_pkl(pkl: str, out: str, classes: str | None) -> None:
    """Convert a reference StyleGAN2-ADA snapshot PKL into a generator .safetensors OUT.

    The pickle is read with an allow-list: no code from it is imported or run, and a file
    that asks for anything beyond tensors and plain values is refused. G_ema is exported.
    """
    from stylegan2_ada.pkl.importer import load_reference_pkl, networks_from_checkpoint

    from gen.core.generator_file import export_generator

    ckpt = load_reference_pkl(pkl)
    names = class_names(classes, ckpt.G_config.c_dim, Path(pkl))
    G_ema = networks_from_checkpoint(ckpt, include=("G_ema",))["G_ema"]
    export_generator(G_ema, imported_info(ckpt, names), out)
    cfg = ckpt.G_config
    click.echo(f"wrote {out}: generator {cfg.img_resolution}x{cfg.img_resolution}, "
               f"{cfg.img_channels} channel(s), c_dim {cfg.c_dim}"
               + (f", ADA p {ckpt.augment_p:.3f}" if ckpt.augment_p is not None else ""))
