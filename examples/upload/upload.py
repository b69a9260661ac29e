"""An upload chute: multipart file uploads and raw binary bodies."""

from __future__ import annotations

import hashlib

from fastapi import File, Form, UploadFile

from chutes.chute import Chute, NodeSelector

chute = Chute(
    username="myuser",
    name="upload",
    image="myuser/upload:0.1",
    concurrency=8,
    node_selector=NodeSelector(gpu_count=0),
)


@chute.cord(public_api_path="/upload")
async def upload_file(self, file: UploadFile = File(...), note: str = Form("")) -> dict:
    """Takes a multipart upload and describes it."""
    contents = await file.read()
    return {
        "filename": file.filename,
        "content_type": file.content_type,
        "size": len(contents),
        "sha256": hashlib.sha256(contents).hexdigest(),
        "note": note,
    }


@chute.cord(public_api_path="/checksum")
async def checksum(self, data: bytes) -> dict:
    """Takes a raw body (any content type) and returns its digest."""
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
