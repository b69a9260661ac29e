"""Routes `{user}-{chute}.DOMAIN` to an instance: the direct path, the ASGI path, the lobby, body budgets."""
