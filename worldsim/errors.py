"""The error users see: one line saying what was wrong and what to do."""


class WorldsimError(ValueError):
    """Bad input from a user (a name, a path, a count, a dataset that does not fit).

    The command line prints only its message, without a traceback, so the message must name the
    bad value and say what to do instead.
    """
