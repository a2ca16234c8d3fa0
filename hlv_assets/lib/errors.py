"""User errors: wrong input or configuration, reported in one line (what failed, where, what to do).

`hlv` prints an HLVError as `hlv: <message>` on stderr and exits non-zero, with no traceback unless
`--debug`; code that catches errors to report them to a person catches this class.
"""

from __future__ import annotations


class HLVError(Exception):
    """A mistake the user can fix: the message names what failed, where, and what to do."""

    #: the exit status `hlv` returns for it (2: bad input or configuration, 1: refused or unavailable)
    exit_code = 2


class SettingsError(HLVError, ValueError):
    """An environment variable holds a value the platform does not accept."""


class LabelMappingError(HLVError, ValueError):
    """A checkpoint's classification head whose outputs cannot be mapped to [E, N, C] without the user's order."""


class NLIFileError(HLVError, ValueError):
    """A training or evaluation NLI file (e.g. HLV_MNLI_TRAIN) with a row the platform does not accept."""
