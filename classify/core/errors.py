"""The one exception type the library raises for problems the *user* can fix.

Library code raises `UserError("what was wrong, which file, what to do")`; the click
layer turns it into a one-line `ClickException` (no traceback). Programming errors stay
ordinary exceptions so that they keep their tracebacks.
"""


class UserError(Exception):
    """A problem with the user's input, files or machine, explained in one line."""
