"""The one exception type for problems a user can fix (bad parameter, missing file, corrupt entry).

The CLI prints its message on one line and exits with code 2, without a traceback.
"""
import difflib


class UserError(Exception):
    """A problem with the user's input; the message says what is wrong and what to do."""

    exit_code = 2


def did_you_mean(word, candidates):
    """' (did you mean 'x'?)' for the closest candidate, or '' when nothing is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
