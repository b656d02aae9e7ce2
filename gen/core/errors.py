"""How `gen` reports the engine's errors: like its own, as one line.

The engine (`stylegan2_ada`) imports nothing of ours and raises `EngineError`; every `gen`
command is wrapped with `user_errors` from here, which maps it (and `UserError`) to a
one-line click error. Library code that checks a user's value with an engine rule converts
at that point instead (`as_user_error`), so `--dry-run` fails the same way a run would.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from stylegan2_ada.errors import EngineError

from classify.core.clitools import one_line_errors
from classify.core.errors import UserError

user_errors = one_line_errors(EngineError)


@contextmanager
def as_user_error(prefix: str = "") -> Iterator[None]:
    """Re-raise an `EngineError` inside the block as a `UserError` (optionally prefixed)."""
    try:
        yield
    except EngineError as exc:
        raise UserError(f"{prefix}{exc}") from None
