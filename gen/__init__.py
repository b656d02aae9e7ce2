"""ganbalance GAN stage: StyleGAN2-ADA training, sampling, filtering, metrics and grids."""

from classify import __version__

__all__ = ["__version__"]
