"""Errors that reach a user as one clear line (the CLI prints them without a traceback)."""


class TileserverError(Exception):
    """Base class: the message is meant for the user as it is."""


class InputError(TileserverError):
    """A source or output path that cannot be used (missing, unreadable, not a slide)."""


class CorruptTileError(TileserverError):
    """A stored tile whose header or CRC does not check out; it is never decoded."""


class ModelError(TileserverError):
    """A learned model that is missing, or whose weights do not match the recorded sha256."""


class CodecError(TileserverError):
    """An unknown codec id or spec, or a payload its codec cannot decode."""
