"""Chute files in the Chutes platform SDK's spelling, one per shape that SDK users write (issue 24)."""
