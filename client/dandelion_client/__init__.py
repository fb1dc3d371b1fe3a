"""Thin Dandelion client: talk to a server from a microphone, or stream a file as if spoken."""

__all__ = ["audio", "file_mode"]
