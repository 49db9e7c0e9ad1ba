"""Errors caused by the user's input (files, models, options).

The command-line tools print ``str(error)`` on one line and exit non-zero, without a
traceback; anything else that escapes is a bug and keeps its traceback.
"""


class UserInputError(Exception):
    """A problem with something the user gave us; the message names it and what is wrong."""


class MediaError(UserInputError):
    """A media file that cannot be used: ``"<path>: <problem>"``."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ModelError(UserInputError):
    """A model reference or model folder that cannot be used: ``"<model>: <problem>"``."""

    def __init__(self, model, problem: str):
        self.model = str(model)
        self.problem = problem
        super().__init__(f"{self.model}: {problem}")


class OutputError(UserInputError):
    """An output that cannot or must not be written: ``"<path>: <problem>"`` (the problem names the cause)."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
