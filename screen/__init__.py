"""screen: automatic cryo-EM sample screening."""

__version__ = "0.1.0"
