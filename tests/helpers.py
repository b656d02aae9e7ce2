"""The one check of a command that fails the way a user should see it: one `Error: ...` line.

Every command turns a UserError (and the engine's errors) into click's one-line error
(`classify.core.clitools.user_errors`); a traceback, a second line or a success exit code
means a problem reached the user half-explained.
"""

from __future__ import annotations


def one_line_error(result, *needles: str, after_output: bool = False) -> str:
    """Assert that the click `result` failed with exactly one line `Error: ...` holding every
    needle, and no traceback; returns that line. With `after_output`, lines the command printed
    before it failed (progress, a plan) may precede the error; otherwise the error is all there is."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [ln for ln in result.output.splitlines() if ln.strip()]  # stdout and stderr together
    errors = [ln for ln in lines if ln.startswith("Error:")]
    assert len(errors) == 1, result.output
    if not after_output:
        assert lines == errors, result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]
