"""`gen train`: flags -> TrainConfig (preset + overrides) -> gen.train.train.

Every option defaults to None so that only the flags a user actually typed override the
preset (and, on --resume, the snapshot's config).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import click

from classify.clitools import parse_device, user_errors


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


@click.command("train")
@click.option("--data", "data_dir", type=click.Path(file_okay=False), help="Prepared data folder (classify prepare).")
@click.option("--class", "classes", multiple=True, help="Class to learn; repeat for a class-conditional model.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Run folder (snapshots, grids, metrics).")
@click.option("--preset", type=click.Choice(["auto", "stylegan2", "paper256", "paper512", "paper1024", "cifar",
                                            "cpu-tiny"]), help="Hyper-parameter preset  [default: auto]")
@click.option("--res", type=int, help="Training resolution (power of two).")
@click.option("--fit", type=click.Choice(["crop", "pad", "stretch"]), help="How non-square images are fitted.")
@click.option("--kimg", type=float, help="Train until this many thousand real images were shown.")
@click.option("--batch", type=int, help="Global batch size (all processes together).")
@click.option("--gamma", type=float, help="R1 regularisation weight.")
@click.option("--lr", type=float, help="Adam learning rate of G and D.")
@click.option("--ema-kimg", type=float, help="Half-life of the G_ema average, in kimg.")
@click.option("--channel-base", type=int, help="Feature maps at a resolution: min(channel_base // res, channel_max).")
@click.option("--channel-max", type=int, help="Upper bound on feature maps per layer.")
@click.option("--map", "map_layers", type=int, help="Mapping network depth.")
@click.option("--mbstd-group", type=int, help="Minibatch-stddev group size.")
@click.option("--mirror/--no-mirror", default=None, help="Add x-flipped copies of the reals.")
@click.option("--aug", type=click.Choice(["ada", "fixed", "none"]), help="Augmentation: adaptive p, fixed p, or off.")
@click.option("--target", type=float, help="ADA target for r_t = E[sign(D(real))].")
@click.option("--p", "p", type=float, help="Initial (ada) or constant (fixed) augmentation probability.")
@click.option("--metrics", help="Comma list: fid,kid (Inception) or fd,kd (judge features).")
@click.option("--metric-every", type=int, help="Compute metrics every N ticks (and at the end).")
@click.option("--inception-weights", type=click.Path(dir_okay=False), help="Local Inception .pth for FID/KID.")
@click.option("--judge", type=click.Path(dir_okay=False), help="classify train model.pt: features for FD/KD.")
@click.option("--snap", type=int, help="Snapshot every N ticks.")
@click.option("--keep", type=int, help="Keep the last K snapshots (plus the best).")
@click.option("--tick-kimg", type=float, help="Tick length in kimg (one metrics.jsonl row per tick).")
@click.option("--resume", help="Continue a run exactly: RUN_DIR, a snapshot .pt, or 'latest' (in --out).")
@click.option("--resume-from", type=click.Path(dir_okay=False), help="Initialise from .pt/.safetensors/.pkl (transfer).")
@click.option("--freeze-d", type=int, help="Freeze the first K discriminator blocks (transfer learning).")
@click.option("--device", help="cpu, cuda, cuda:N or auto  [default: auto]")
@click.option("--gpus", type=int, help="Processes to launch with torchrun (one per GPU).")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), help="[default: bf16 on GPU, fp32 on CPU]")
@click.option("--compile/--no-compile", "compile_", default=None, help="torch.compile the networks.")
@click.option("--channels-last/--no-channels-last", default=None, help="channels_last memory format.")
@click.option("--tf32/--no-tf32", default=None, help="TF32 matmuls/convolutions on CUDA  [default: on].")
@click.option("--seed", type=int, help="Random seed.")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and dataset summary, then exit.")
@user_errors
def train_command(dry_run: bool, compile_: bool | None, metrics: str | None, device: str | None,
                  classes: tuple[str, ...], **flags) -> None:
    """Train StyleGAN2-ADA on the train split of one class (or several, conditional).

    --data, --class and --out are required for a new run; --resume RUN_DIR continues one.
    Every other option left out takes the --preset's value (or the dataclass default):
    --dry-run prints the resolved config. On a CPU use --preset cpu-tiny.
    """
    from gen.presets import resolve_config

    overrides = dict(flags, compile=compile_, metrics=_csv(metrics), classes=list(classes) or None)
    # Stored in the run (and the generator exports `gen sample` reads): absolute, so both work
    # from any directory later.
    for key in ("data_dir", "judge", "inception_weights", "resume_from"):
        if overrides.get(key):
            overrides[key] = os.path.abspath(overrides[key])
    overrides["device"] = parse_device(device or "auto")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    gpus = overrides.get("gpus") or 1
    if gpus > 1 and world == 1 and not dry_run:
        raise SystemExit(_launch_torchrun(gpus))
    overrides["gpus"] = world if world > 1 else gpus
    if overrides.get("resume"):
        from gen.snapshot import find_resume_snapshot, load_snapshot

        _same_run_folder(overrides)
        snap = find_resume_snapshot(overrides["resume"], overrides.get("out_dir") or overrides["resume"])
        base = load_snapshot(snap)["config"]
        overrides.setdefault("out_dir", None)
        overrides["out_dir"] = overrides["out_dir"] or (overrides["resume"] if os.path.isdir(overrides["resume"])
                                                        else str(snap.parent))
        cfg = resolve_config(overrides, base=dict(base, resume=None, resume_from=None))
    else:
        _require(overrides, ("data_dir", "--data"), ("classes", "--class"), ("out_dir", "--out"))
        cfg = resolve_config(overrides)
    _warn_if_heavy_on_cpu(cfg)
    if dry_run:
        _print_dry_run(cfg)
        return
    from gen.train import train

    result = train(cfg, log=click.echo)
    if os.environ.get("RANK", "0") == "0":
        click.echo(f"{result['status']}: kimg {result['kimg']:.3f}, latest snapshot {result['snapshot']} in {cfg.out_dir}")
    if result["status"] == "stopped":
        # Saved, but not finished: exit like the signal would (130 SIGINT, 143 SIGTERM) so that
        # `gen train ... && gen sample ...` and the pipeline do not carry on with a half-trained GAN.
        raise SystemExit(128 + int(getattr(signal, result.get("stop_signal") or "SIGINT")))


def _same_run_folder(overrides: dict) -> None:
    """--resume continues a run where it is; a second folder would get half its files."""
    from classify.errors import UserError

    resume, out = overrides["resume"], overrides.get("out_dir")
    if resume == "latest" or not out:
        return
    run_dir = resume if os.path.isdir(resume) else os.path.dirname(resume) or "."
    if os.path.abspath(run_dir) != os.path.abspath(out):
        raise UserError(f"--resume {resume} continues the run in {run_dir}; drop --out {out}, or start a new run "
                        f"in {out} from its weights with --resume-from {run_dir}/network-snapshot-KIMG.G_ema.safetensors")


def _warn_if_heavy_on_cpu(cfg) -> None:
    """The GPU presets build 512-channel networks: minutes per kimg on a CPU, ETAs in days."""
    if cfg.device == "cpu" and cfg.channel_max >= 256 and os.environ.get("RANK", "0") == "0":
        click.echo(f"note: preset {cfg.preset} on the CPU builds {cfg.channel_max}-channel networks (minutes per "
                   "kimg here); --preset cpu-tiny is sized for CPUs", err=True)


def _require(overrides: dict, *pairs: tuple[str, str]) -> None:
    from classify.errors import UserError

    missing = [flag for key, flag in pairs if not overrides.get(key)]
    if missing:
        raise UserError(f"gen train needs {', '.join(missing)} (or --resume RUN_DIR to continue a run)")


def _print_dry_run(cfg) -> None:
    from gen.train_data import load_train_data

    click.echo(json.dumps(cfg.to_dict(), indent=2))
    click.echo(load_train_data(cfg).summary())


def _launch_torchrun(gpus: int) -> int:
    """Re-run this command under torchrun with one process per GPU; returns its exit code."""
    args = sys.argv[1:]
    if args and args[0] == "train":
        args = args[1:]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
           "-m", "gen.train", *args]
    return subprocess.call(cmd)
