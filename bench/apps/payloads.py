"""What every benchmarked app reads and answers, so the three kinds do the same work."""

from __future__ import annotations

from pydantic import BaseModel, Field

STREAM_EVENTS = 100

HELLO_BODY = b'{"name": "Ada"}'
PERSON_BODY = b'{"name": "Ada", "age": 36, "email": "ada@example.com"}'
STREAM_BODY = b'{"prompt": "Ada"}'


class Person(BaseModel):
    """A three-field input with constraints, as a pydantic-input cord would take."""

    name: str = Field(min_length=1, max_length=64)
    age: int = Field(ge=0, le=150)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)


def greet(name: str) -> dict:
    return {"message": f"Hello, {name}!"}


def describe(name: str, age: int) -> dict:
    return {"message": f"Hello, {name}!", "age": age}


def event(prompt: str, index: int) -> dict:
    return {"index": index, "token": f"{prompt}-{index}"}
