"""The errors a user can cause, in one hierarchy.

Every message says what was received, what was expected and what to do. The
command line turns a `TlhelpersError` (and the `ValueError` of a bad argument)
into one line and exit status 2.
"""


class TlhelpersError(Exception):
    """Base of the package's errors."""


class DataError(TlhelpersError, ValueError):
    """Bad data or a request the data cannot satisfy (empty folder, too few images per class)."""


class WeightsUnavailableError(TlhelpersError, RuntimeError):
    """Weights could not be obtained (offline and not cached, missing file)."""


class DownloadError(TlhelpersError, OSError):
    """A file could not be fetched from any origin, or arrived with the wrong hash or size."""


class HubUnavailableError(TlhelpersError, RuntimeError):
    """A TF-Hub handle could not be resolved (offline, missing folder)."""


class SourceWeightsError(DataError):
    """A shipped source model is missing, truncated or not the committed file."""
