from dandelion.backends.asr.base import SpeechRecognizer

__all__ = ["SpeechRecognizer"]
