"""Embedding a whole file or folder: read records, embed them in chunks, resume, write out."""
