"""Desired against actual state: the supervisor, scaling, replicas, which GPUs an instance gets."""
