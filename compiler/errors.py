"""The project's own error types.

Every failure a user can cause is raised as an `AdacalError` with one readable
sentence that names the file, node or limit at fault; the CLI prints it and
exits with code 2.  Anything else escaping is a bug in adacal.
"""


class AdacalError(Exception):
    """A problem with the user's input (model, data, options, limits)."""


class ModelFileError(AdacalError):
    """The model file is missing, unreadable, truncated or not ONNX."""


class UnsupportedError(AdacalError):
    """The model uses an op or pattern adacal cannot convert exactly."""
