"""`gen train`: flags -> GanTrainConfig (preset + overrides) -> gen.train.trainer.train_gan.

Every option defaults to None so that only the flags a user actually typed override the
preset (and, on --resume, the snapshot's config).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys

import click

from classify.core.clitools import claim_cores, parse_device, warn_if_slow_cpu_bf16
from classify.core.configs import config_option
from gen.core.download import is_url
from gen.core.errors import user_errors
from gen.train.config import GanTrainConfig
from gen.train.presets import preset_field_names


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _default_note(name: str) -> str | None:
    """What a user gets without the flag: the preset's value, or a rule the CLI applies."""
    notes = {"precision": "bf16 on CPUs with native bf16, else fp32",
             "channels_last": "on for CPUs with AVX512, else off",
             "keep_freed_memory": "on for CPU runs, else off"}
    if name in notes:
        return notes[name]
    every, some = preset_field_names()
    if name in every:
        return "from --preset"
    if name in some:
        default = getattr(GanTrainConfig(), name)
        return f"{default}, or the --preset's"
    return None


def _options(fn):
    """Every GanTrainConfig field as an option, defaulting to None: only typed flags override
    the preset (or, on --resume, the snapshot's config)."""
    # stage: set by --recipe
    special = {"classes": {"multiple": True}, "metrics": {"type": str}, "stage": {"hidden": True}}
    for f in reversed(dataclasses.fields(GanTrainConfig)):
        fn = config_option(GanTrainConfig, f.name, none_default=True, default_note=_default_note(f.name),
                           **special.get(f.name, {}))(fn)
    return fn


@click.command("train")
@_options
@click.option("--dry-run", is_flag=True, help="Print the resolved config and dataset summary, then exit.")
@user_errors
def train_command(dry_run: bool, metrics: str | None, device: str | None, classes: tuple[str, ...],
                  **flags) -> None:
    """Train StyleGAN2-ADA on the train split of one class (or several, conditional).

    --data, --class and --out are required for a new run; --resume RUN_DIR continues one.
    Every other option left out takes the --preset's value (or the dataclass default):
    --dry-run prints the resolved config. On a CPU use --preset cpu-tiny.
    """
    claim_cores()  # this command owns the cores it may use (GANBALANCE_THREADS overrides)
    from gen.train.recipes import resolve_config

    overrides = dict(flags, metrics=_csv(metrics), classes=list(classes) or None)
    # Stored in the run (and the generator exports `gen sample` reads): absolute, so both work
    # from any directory later.
    for key in ("data_dir", "judge", "inception_weights", "resume_from"):
        if overrides.get(key) and not is_url(overrides[key]):
            overrides[key] = os.path.abspath(overrides[key])
    overrides["device"] = parse_device(device or "auto")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    gpus = 1 if overrides.get("gpus") is None else overrides["gpus"]  # 0 reaches the config, which refuses it
    if gpus > 1 and world == 1 and not dry_run:
        raise SystemExit(_launch_torchrun(gpus))
    overrides["gpus"] = world if world > 1 else gpus
    point = None
    if overrides.get("resume"):
        from gen.train.snapshot import load_resume_point

        _same_run_folder(overrides)
        # Found, read and compared once here; the trainer continues from this very state.
        point = load_resume_point(overrides["resume"], overrides.get("out_dir") or overrides["resume"])
        overrides["out_dir"] = overrides.get("out_dir") or (
            overrides["resume"] if os.path.isdir(overrides["resume"]) else str(point.path.parent))
        cfg = resolve_config(overrides, base=dict(point.config, resume=None, resume_from=None),
                             snapshot=point.path)
    else:
        _require(overrides, ("data_dir", "--data"), ("classes", "--class"), ("out_dir", "--out"))
        cfg = resolve_config(overrides)
    _warn_if_heavy_on_cpu(cfg)
    warn_if_slow_cpu_bf16(cfg.device, cfg.precision == "bf16", flag="--precision bf16")
    if dry_run:
        _print_dry_run(cfg)
        return
    from gen.train.recipes import run_recipe

    result = run_recipe(cfg, log=click.echo, resume=point)
    if os.environ.get("RANK", "0") == "0":
        click.echo(f"{result['status']}: kimg {result['kimg']:.3f}, latest snapshot {result['snapshot']} "
                   f"in {cfg.out_dir}")
    if result["status"] == "stopped":
        # Saved, but not finished: exit like the signal would (130 SIGINT, 143 SIGTERM) so that
        # `gen train ... && gen sample ...` and the pipeline do not carry on with a half-trained GAN.
        raise SystemExit(128 + int(getattr(signal, result.get("stop_signal") or "SIGINT")))


def _same_run_folder(overrides: dict) -> None:
    """--resume continues a run where it is; a second folder would get half its files."""
    from classify.core.errors import UserError

    resume, out = overrides["resume"], overrides.get("out_dir")
    if resume == "latest" or not out:
        return
    run_dir = resume if os.path.isdir(resume) else os.path.dirname(resume) or "."
    if os.path.abspath(run_dir) != os.path.abspath(out):
        raise UserError(f"--resume {resume} continues the run in {run_dir}; drop --out {out}, or start a new "
                        f"run in {out} from its weights with --resume-from "
                        f"{run_dir}/network-snapshot-KIMG.G_ema.safetensors")


def _warn_if_heavy_on_cpu(cfg) -> None:
    """The GPU presets build 512-channel networks: minutes per kimg on a CPU, ETAs in days."""
    if cfg.device == "cpu" and cfg.channel_max >= 256 and os.environ.get("RANK", "0") == "0":
        click.echo(f"note: preset {cfg.preset} on the CPU builds {cfg.channel_max}-channel networks "
                   "(minutes per kimg here); --preset cpu-tiny is sized for CPUs", err=True)


def _require(overrides: dict, *pairs: tuple[str, str]) -> None:
    from classify.core.errors import UserError

    missing = [flag for key, flag in pairs if not overrides.get(key)]
    if missing:
        raise UserError(f"gen train needs {', '.join(missing)} (or --resume RUN_DIR to continue a run)")


def _print_dry_run(cfg) -> None:
    from gen.train.data import load_gan_train_data

    click.echo(json.dumps(cfg.to_dict(), indent=2))
    click.echo(_augmentation_line(cfg))
    click.echo(load_gan_train_data(cfg).summary())


def _augmentation_line(cfg) -> str:
    """What D's images go through, in words (the pipe's groups, or why there is none)."""
    if cfg.aug in ("ada", "fixed"):
        from stylegan2_ada.augment import augpipe_groups

        p = "adaptive p from " if cfg.aug == "ada" else "fixed p = "
        return f"augmentation: {cfg.augpipe} = {', '.join(augpipe_groups(cfg.augpipe))} ({p}{cfg.p:g})"
    return f"augmentation: {cfg.aug} (--augpipe {cfg.augpipe} unused)"


def _launch_torchrun(gpus: int) -> int:
    """Re-run this command under torchrun with one process per GPU; returns its exit code."""
    # `python -m gen train ...` under torchrun: the same CLI, so every rank parses the same flags.
    args = sys.argv[1:]
    if args and args[0] == "train":
        args = args[1:]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
           "-m", "gen", "train", *args]
    return subprocess.call(cmd)
