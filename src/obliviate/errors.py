"""User-facing errors: the CLI turns these into one line on stderr and exit code 2."""


class UserError(Exception):
    """A mistake in the user's input (bad path, bad file, bad option), never a bug.

    Raise it with a message a person can act on; the CLI prints ``error: <message>``
    and exits with status 2 instead of showing a traceback.
    """
