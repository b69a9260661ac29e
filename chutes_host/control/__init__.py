"""The control API under /api/v1: chute routes, keys and sign-in, admission, what its parts share."""
