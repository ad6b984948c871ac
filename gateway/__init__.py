"""Embedding gateway: many ONNX embedding models behind Ollama's and OpenAI's APIs."""

__version__ = "0.1.0"
