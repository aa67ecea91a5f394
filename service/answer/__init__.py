"""Answering from retrieved passages: question analysis, span reading, deciding, composing."""
