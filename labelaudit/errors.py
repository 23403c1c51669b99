"""The one exception type that means "the user gave us something we cannot use"."""


class UsageError(Exception):
    """Bad usage or bad input: the CLI prints the message and exits with code 2.

    The message says what is wrong and how to fix it, e.g.
    ``UsageError("no column 'lable' in data.csv (columns: a, b, label); pass --label-column")``.
    """
