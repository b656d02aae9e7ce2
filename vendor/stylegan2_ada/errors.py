"""The engine's own error type: the engine imports nothing from `gen` or `classify`.

`EngineError` marks a problem with what the caller handed the engine (a file that is not a
StyleGAN2-ADA snapshot, a configuration the networks cannot be built with), explained in one
line. The applications map it to their one-line user error at the CLI; programming errors
stay ordinary exceptions with their tracebacks.
"""


class EngineError(ValueError):
    """A bad input to the engine (file or configuration), explained in one line.

    A `ValueError` so that code which validated engine configs with `except ValueError`
    keeps working.
    """


class CheckpointError(EngineError):
    """A file that cannot be imported as a reference StyleGAN2-ADA snapshot."""
