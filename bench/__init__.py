"""Throughput benchmark: the gateway against raw ONNX Runtime, sentence-transformers, Infinity and
an Ollama-style one-input-at-a-time server, on the same model and the same inputs.

Run it with `make bench` (or `python -m bench --help`).
"""
