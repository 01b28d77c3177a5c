"""User-facing errors: a mistake the user can fix gets one clear line, never a traceback."""


class UserError(Exception):
    """A problem with the user's input or setup; the CLI prints it as one line and exits 2."""


class PhotoError(UserError):
    """A photo that cannot be read: missing, not an image, truncated, or too large."""


class IndexMissingError(UserError):
    """The catalog index does not exist or is empty."""


class IndexDamagedError(UserError):
    """The catalog index or its learned model cannot be read, or an `ipl index` did not finish; the
    message names the command that repairs it."""


class UnknownBackendError(UserError):
    """A Context names a backend no plugin registered."""


class SearchUnavailableError(Exception):
    """A searcher cannot answer now (a third-party searcher raises it; the graph writes without the catalog)."""
