"""`classify models`: list the model registry and the strategy parts."""

from __future__ import annotations

import click

from classify.core.clitools import user_errors


@click.command("models")
@user_errors
def models() -> None:
    """List the classifier models and the strategies they can be trained with.

    Any timm architecture works too, as timm:NAME (e.g. timm:convnext_nano). ImageNet weights:
    --pretrained imagenet downloads them once into timm's (or torchvision's) cache. Offline,
    save them on a machine that is online and pass the file:

        python -c "import timm, torch; torch.save(timm.create_model('resnet18',
            pretrained=True).state_dict(), 'r18.pt')"
        classify train ... --pretrained r18.pt
    """
    from classify.model.models import list_models, model_spec
    from classify.train.strategies import list_strategies

    click.echo("models (in_chans 1 or 3; random init, --pretrained imagenet or --pretrained LOCAL_FILE; "
               "also any timm architecture as timm:NAME):")
    for name in list_models():
        spec = model_spec(name)
        click.echo(f"  {name:16s} {spec.source}:{spec.arch}")
    click.echo("strategies (combine with '+', e.g. oversample+classic): " + ", ".join(list_strategies()))
