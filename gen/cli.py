"""`gen` command-line entry point (a click group). Subcommands live in gen/commands/."""

from __future__ import annotations

import click

from classify import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gen (ganbalance)")
def main() -> None:
    """ganbalance GAN stage: train StyleGAN2-ADA on the rare class, sample and filter synthetic images."""


def _register() -> None:
    # Imported here so that `gen --help` lists every subcommand; each module defines one.
    from gen.commands.grid import grid
    from gen.commands.import_pkl import import_pkl
    from gen.commands.merge import merge_samples
    from gen.commands.pipeline import pipeline
    from gen.commands.sample import sample
    from gen.commands.train import train_command

    for command in (train_command, sample, merge_samples, grid, import_pkl, pipeline):
        main.add_command(command)


_register()
