"""Dandelion: a self-hostable real-time voice assistant on Ray Serve."""

__version__ = "0.1.0"
