"""The exceptions users see: a single line that names the culprit, and the exit status it ends with.

The exit statuses of ``acdc-engine`` (README, "Exit status"):

==== =====================================================================================
0    success
1    runtime error: the environment failed (a full disk, a file that cannot be read or
     written, the run database's I/O), or an internal error (then with a traceback)
2    usage error: an unknown command or option, a missing argument, a bad option value
3    bad input: a config value, a seed model, a run folder, a plugin, task code
130  interrupted (Ctrl-C); a run keeps its committed generations (``acdc-engine resume``)
==== =====================================================================================
"""

#: Exit statuses (see the table above).
EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class AcdcError(Exception):
    """A user-facing error about bad input. Its message is one line naming what is wrong.

    The CLI prints ``error: <message>`` on stderr and exits with :attr:`exit_code` (3, bad input)
    instead of a traceback. Raise it for bad input (config, seeds, plugins, task code), not for bugs;
    raise :class:`AcdcRuntimeError` where the environment failed.
    """

    exit_code = EXIT_INPUT


class AcdcRuntimeError(AcdcError):
    """A user-facing error where the environment failed (a full disk, an unwritable folder): exit status 1."""

    exit_code = EXIT_RUNTIME
