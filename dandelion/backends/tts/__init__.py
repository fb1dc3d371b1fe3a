from dandelion.backends.tts.base import SpeechSynthesizer

__all__ = ["SpeechSynthesizer"]
