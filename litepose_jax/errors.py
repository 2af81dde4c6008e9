"""The error boundary between a user's input and the code.

`UserError` is raised where a message names a user's file, field, flag or argument: the command
line prints it as one line. Any other exception is a bug (or an environment problem) and keeps
its traceback. It subclasses ValueError so callers that catch ValueError keep working.
"""
from __future__ import annotations


class UserError(ValueError):
  """Bad user input (a file, config field, flag or argument); the message names it."""
