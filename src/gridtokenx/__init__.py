"""GridTokenX: peer-to-peer energy trading gateway."""

__version__ = "0.1.0"
