"""The one exception type users see: a single line that names the culprit."""


class AcdcError(Exception):
    """A user-facing error. Its message is one line naming what is wrong.

    The CLI prints ``error: <message>`` and exits with status 2 instead of a
    traceback. Raise it for bad input (config, seeds, plugins, task code), not
    for bugs.
    """
