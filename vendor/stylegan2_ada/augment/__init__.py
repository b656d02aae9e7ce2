"""What D's images go through: the ADA pipeline (`pipe`: groups, named pipelines, the p rule),
its parameter draws (`draws`), matrices (`matrices`), geometric resampling (`warp`) and
image-space groups (`filter`); and DiffAugment (`diffaug`), the alternative."""

from .pipe import AUGPIPES, DEFAULT_AUGPIPE, AugmentPipe, ada_update, apply_colour, apply_draw, augpipe_groups

__all__ = ["AUGPIPES", "DEFAULT_AUGPIPE", "AugmentPipe", "ada_update", "apply_colour", "apply_draw",
           "augpipe_groups"]
