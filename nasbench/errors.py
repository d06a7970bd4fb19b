"""User-facing errors.

A ``NasbenchError`` carries one sentence meant for the user: which file, key or value is wrong and what
would be valid. The CLI prints it without a traceback and exits with code 2. Anything else that escapes is
a bug and keeps its traceback.
"""


class NasbenchError(Exception):
    """Bad input from the user (a file, a flag, a value); the message says what is wrong and what is valid."""
