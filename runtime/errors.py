"""The one base class of the errors a user can fix: a bad file, value, folder or missing install.

Every such error's message names what was wrong (the file, the value received) and the fix. The CLI
prints it as one line and exits 2, whatever part of edgeclf raised it; anything else is a bug and keeps
its traceback.
"""
from __future__ import annotations


class UserError(Exception):
    """Bad input or setup the user can fix; the message says how."""
