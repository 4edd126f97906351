"""The one exception type that reaches the user as a single line instead of a traceback."""


class UserError(ValueError):
    """A mistake the user can fix (a bad value, a missing file); the message says what and how."""
