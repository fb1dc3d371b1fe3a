from dandelion.backends.tts.base import Alignment, SpeechChunk, SpeechSynthesizer

__all__ = ["Alignment", "SpeechChunk", "SpeechSynthesizer"]
