"""ganbalance classification stage: data layer, models, strategies, training, ablations.

`classify` imports neither `gen` nor `stylegan2_ada`; the dependency runs one way.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ganbalance")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
