from dandelion.backends.vad.base import VADModel, VADStream

__all__ = ["VADModel", "VADStream"]
