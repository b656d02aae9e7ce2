"""`gen` command-line entry point (a click group). Subcommands live in gen/commands/."""

from __future__ import annotations

import click

from classify import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gen (ganbalance)")
def main() -> None:
    """ganbalance GAN stage: train StyleGAN2-ADA on the rare class, sample and filter synthetic images."""


def _register() -> None:
    # Each subcommand module adds itself here in one line.
    pass
    from gen.commands.import_pkl import import_pkl
    main.add_command(import_pkl)
    from gen.commands.sample import sample; main.add_command(sample)  # noqa: E702, I001
    from gen.commands.grid import grid; main.add_command(grid)  # noqa: E702, I001
    from gen.commands.train import train_command; main.add_command(train_command)  # noqa: E702, I001


_register()
