"""Deploying a chute: a bundle in, checked and unpacked; a version's spec and record out."""
