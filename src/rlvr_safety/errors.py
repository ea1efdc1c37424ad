"""One exception type for problems the user can fix: the CLI prints its message on one line and exits 2."""

from __future__ import annotations


class UserError(Exception):
    """A bad config, missing file, unknown name, or unavailable service; the message says what and how to fix."""

    exit_code = 2
