"""A clean-room, pure-PyTorch StyleGAN2-ADA engine (networks, ADA augmentation, losses).

Written from `shared/spec/stylegan2-ada.md` and the papers (Karras et al. 2020a, 2020b).
State-dict names match the widely shared reference checkpoints so that their weights load.
"""

from .augment import AugmentPipe
from .config import DiscriminatorConfig, GeneratorConfig
from .discriminator import Discriminator
from .generator import Generator

__all__ = ["AugmentPipe", "DiscriminatorConfig", "Discriminator", "GeneratorConfig", "Generator"]
