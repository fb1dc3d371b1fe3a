from dandelion.backends.llm.base import ChatModel

__all__ = ["ChatModel"]
