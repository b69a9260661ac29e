"""set_user("chutes") then pip_install, as the SDK's kokoro and whisper examples build their images."""

import os

from chutes.chute import Chute, NodeSelector
from chutes.image import Image

image = (
    Image(username="myuser", name="set-user-pip", tag="0.1")
    .from_base(os.environ.get("CHUTES_BASE_IMAGE", "localhost/chutes-base:bookworm"))
    .set_user("chutes")
    .pip_install(["six==1.16.0"])
)
chute = Chute(username="myuser", name="set-user-pip", image=image, node_selector=NodeSelector(gpu_count=0))


@chute.cord(public_api_path="/six")
async def which_six(self) -> dict:
    import six

    return {"six": six.__version__, "uid": os.getuid()}
