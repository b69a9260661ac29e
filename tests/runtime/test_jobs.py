"""@chute.job: checked at decoration time (import), bound like a cord, described in the manifest."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import BaseModel, ValidationError

from chutes.chute import Chute, Job, Port
from chutes.exceptions import CordDefinitionError, JobDefinitionError


def make_chute() -> Chute:
    return Chute(username="me", name="jobs", image="x")


def test_job_is_registered_and_returned_unchanged() -> None:
    chute = make_chute()

    async def render(self, frames: int, scale: float = 1.0, output_dir: str = "") -> dict:
        return {"frames": frames}

    assert chute.job(timeout=600, ports=[Port("web", 8080, "http")])(render) is render
    job = chute.jobs["render"]
    assert isinstance(job, Job)
    assert repr(job) == "Job(name='render', timeout=600, upload=True, ports=[8080])"
    assert job.context_params == ("output_dir",)
    assert job.bind(b'{"frames": 3}') == {"frames": 3, "scale": 1.0}
    with pytest.raises(ValidationError) as caught:
        job.bind(b'{"frames": "many", "output_dir": "/etc"}')  # the directories are never arguments
    assert {e["loc"] for e in caught.value.errors()} == {("frames",), ("output_dir",)}
    assert chute.manifest()["jobs"] == [
        {
            "name": "render",
            "timeout": 600,
            "upload": True,
            "ports": [{"name": "web", "port": 8080, "proto": "http"}],
            "input_fields": ["frames", "scale"],
            "required": ["frames"],
            "args_schema": {
                "additionalProperties": False,
                "properties": {
                    "frames": {"title": "Frames", "type": "integer"},
                    "scale": {"default": 1.0, "title": "Scale", "type": "number"},
                },
                "required": ["frames"],
                "title": "RenderJobInput",
                "type": "object",
            },
        }
    ]


class Settings(BaseModel):
    rows: int


def test_bare_decorator_and_model_arguments() -> None:
    chute = make_chute()

    @chute.job
    def build(self, settings: Settings) -> None: ...

    assert chute.jobs["build"].timeout is None and not chute.jobs["build"].is_async
    assert chute.jobs["build"].bind(b'{"rows": 2}')["settings"].rows == 2
    assert chute.jobs["build"].args_schema["properties"] == {"rows": {"title": "Rows", "type": "integer"}}

    @chute.job
    def call(self, hook: Callable[[], None] | None = None) -> None: ...

    assert chute.jobs["call"].args_schema is None  # pydantic cannot say it in JSON schema: the job checks it
    assert "args_schema" not in chute.jobs["call"].describe()
    assert "jobs" not in make_chute().manifest()  # a chute without jobs keeps its manifest as it was


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": 0}, "timeout must be a whole number of seconds of at least 1 (or None for no limit), not 0"),
        ({"timeout": 1.5}, "timeout must be a whole number"),
        ({"upload": "yes"}, "upload must be True or False, not 'yes'"),
        ({"ports": [Port("web", 8080), Port("web", 8081)]}, "ports must have distinct names; web appears twice"),
        ({"ports": [{"name": "web", "port": 8000}]}, "a job's port must be 22, 2202 or in 8002-65535"),
        ({"ssh": "yes"}, "ssh must be True or False, not 'yes'"),
        ({"ports": [{"name": "Web!", "port": 8080}]}, "String should match pattern"),
        ({"ports": [{"name": "web", "port": 8080, "proto": "sctp"}]}, "Input should be 'tcp', 'udp' or 'http'"),
        ({"ports": "8080"}, "ports must be a list of Port(name, port, proto), not str"),
    ],
)
def test_bad_options_fail_at_decoration_naming_the_job(options: dict, message: str) -> None:
    chute = make_chute()
    with pytest.raises(JobDefinitionError) as caught:

        @chute.job(**options)
        async def train(self) -> None: ...

    assert str(caught.value).startswith("job 'train' (test_jobs.py:")
    assert message in str(caught.value)


def test_bad_functions_fail_at_decoration() -> None:
    chute = make_chute()
    with pytest.raises(JobDefinitionError, match="must not yield"):

        @chute.job()
        async def frames(self):
            yield 1

    with pytest.raises(JobDefinitionError, match="must take 'self'"):
        chute.job()(lambda: None)
    with pytest.raises(JobDefinitionError, match="takes JSON arguments only"):

        @chute.job()
        async def raw(self, data: bytes) -> None: ...

    @chute.job()
    async def once(self) -> None: ...

    with pytest.raises(JobDefinitionError, match=r"job 'once' \(test_jobs.py:\d+\) already has that name"):

        @chute.job()
        async def once(self) -> None: ...

    assert issubclass(JobDefinitionError, CordDefinitionError)  # caught where cord mistakes are


def test_sdk_import_paths() -> None:
    from chutes.chute.job import Job as SdkJob
    from chutes.chute.job import Port as SdkPort

    assert (SdkJob, SdkPort) == (Job, Port)
    assert Port("ssh", 22, "tcp") == Port(name="ssh", port=22, proto="tcp")


async def test_the_sdks_job_spelling_ssh_and_job_data(tmp_path) -> None:
    from chutes.jobrun import call_in_task

    chute = make_chute()

    @chute.job(ssh=True, timeout=3600)
    async def run(self, **job_data) -> dict:
        with open(f"{job_data['output_dir']}/args.txt", "w") as f:
            f.write(repr(sorted(job_data)))
        return {"output_dir": job_data["output_dir"], "model": job_data.get("model")}

    @chute.job(ports=[Port("ssh", 2202, "tcp")], ssh=True)
    async def keep(self, steps: int, **rest) -> list:
        return [steps, rest]

    job = chute.jobs["run"]
    assert [p.model_dump() for p in job.ports] == [{"name": "ssh", "port": 2202, "proto": "tcp"}]
    assert job.describe()["ssh"] is True and job.describe()["args_schema"]["additionalProperties"] is True
    kwargs = job.bind(b'{"model": "m", "output_dir": "/not/here"}')
    out = tmp_path / "out"
    out.mkdir()
    result = await call_in_task(chute, job, kwargs, out, tmp_path)
    assert result == {"output_dir": str(out), "model": "m"}  # the run's own output_dir, never the client's
    assert (out / "args.txt").read_text() == "['input_dir', 'model', 'output_dir']"
    kept = chute.jobs["keep"]
    assert len(kept.ports) == 1  # ssh=True with the ssh port already listed adds nothing
    assert kept.bind(b'{"steps": 2, "lr": 0.1}') == {"steps": 2, "lr": 0.1}
    with pytest.raises(ValidationError, match="steps"):
        kept.bind(b'{"lr": 0.1}')
    assert Port("ssh", 2202, "tcp").port == 2202


async def test_port_proxy_of_a_job_with_only_udp_ports_says_so() -> None:
    import httpx

    from chutes.jobrun import PortProxy

    chute = make_chute()

    @chute.job(ports=[Port("media", 9000, "udp")])
    async def stream(self) -> None:
        return None

    proxy = PortProxy(chute.jobs["stream"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=proxy), base_url="http://job") as client:
        default = await client.get("/")
        named = await client.get("/", headers={"X-Chutes-Job-Port": "media"})
    assert default.status_code == 404
    assert default.json() == {
        "detail": "the job has no TCP port to forward to (its ports: media (9000/udp)); declare a tcp or http Port"
    }
    assert named.status_code == 400 and "the job has no port 'media'" in named.json()["detail"]
