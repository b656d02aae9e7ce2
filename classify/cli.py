"""`classify` command-line entry point (a click group). Subcommands live in classify/commands/."""

from __future__ import annotations

import click

from classify import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="classify (ganbalance)")
def main() -> None:
    """ganbalance classification stage: prepare data, train/evaluate classifiers, run ablations."""


def _register() -> None:
    # Import here so that `classify --help` lists every subcommand; each module defines one.
    from classify.commands import ablate, prepare
    from classify.commands import evaluate as evaluate_cmd
    from classify.commands import models as models_cmd
    from classify.commands import predict as predict_cmd
    from classify.commands import report as report_cmd
    from classify.commands import train as train_cmd
    from classify.commands.ensemble import ensemble
    from classify.commands.explain import explain
    from classify.commands.outliers import outliers
    from classify.commands.pseudo_label import pseudo_label

    main.add_command(prepare.prepare)
    main.add_command(ablate.ablate)
    main.add_command(report_cmd.report)
    main.add_command(train_cmd.train)
    main.add_command(evaluate_cmd.evaluate)
    main.add_command(predict_cmd.predict)
    main.add_command(models_cmd.models)
    main.add_command(ensemble)
    main.add_command(pseudo_label)
    main.add_command(explain)
    main.add_command(outliers)


_register()
