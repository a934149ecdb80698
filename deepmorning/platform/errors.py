"""User-facing errors.

Anything a user can get wrong (a flag value, a path, an address, a config file) raises
:class:`DeepmorningError` with one sentence naming the problem. The CLI prints it as a single
``error: ...`` line on stderr and exits with status 2; it never shows a traceback unless
``--debug`` is given.
"""


class DeepmorningError(Exception):
    """A problem the user can fix, reported as one line without a traceback."""

    exit_code = 2
