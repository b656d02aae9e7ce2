"""A clean-room, pure-PyTorch StyleGAN2-ADA engine (networks, ADA augmentation, losses).

Written from the StyleGAN2-ADA papers (Karras et al. 2020a, 2020b) and the specification the
project was given; `docs/ENGINE.md` states in our own words what is implemented and where it
differs from the papers' setup.
State-dict names match the widely shared reference checkpoints so that their weights load.
"""

from .augment import AugmentPipe
from .config import DiscriminatorConfig, GeneratorConfig, check_resolution
from .discriminator import Discriminator
from .errors import CheckpointError, EngineError
from .generator import Generator

__all__ = [
    "AugmentPipe", "CheckpointError", "DiscriminatorConfig", "Discriminator", "EngineError",
    "GeneratorConfig", "Generator", "check_resolution",
]
