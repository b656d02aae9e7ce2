"""The network classes in one import place (`stylegan2_ada.networks`), as in the reference layout.

The implementations live in small modules: layers.py (FC, conv, mapping), synthesis.py,
generator.py and discriminator.py.
"""

from .config import DiscriminatorConfig, GeneratorConfig
from .discriminator import Discriminator, DiscriminatorBlock, DiscriminatorEpilogue
from .generator import Generator
from .layers import Conv2dLayer, FullyConnectedLayer, MappingNetwork
from .synthesis import SynthesisBlock, SynthesisLayer, SynthesisNetwork, ToRGBLayer

__all__ = [
    "Conv2dLayer",
    "Discriminator",
    "DiscriminatorBlock",
    "DiscriminatorConfig",
    "DiscriminatorEpilogue",
    "FullyConnectedLayer",
    "Generator",
    "GeneratorConfig",
    "MappingNetwork",
    "SynthesisBlock",
    "SynthesisLayer",
    "SynthesisNetwork",
    "ToRGBLayer",
]
