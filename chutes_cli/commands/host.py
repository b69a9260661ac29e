"""`chutes host`: run a GPU host (`serve`) and manage its users and API keys, on the host machine."""

from __future__ import annotations

import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Where the host keeps its database, bundles and logs.", show_default=False),
]
GpusOpt = Annotated[
    str | None,
    typer.Option(
        "--gpus",
        help="GPUs to place chutes on: 'all' (NVML), 'none', indices '0,1', or declared devices "
        "'4xNVIDIA A100 80GB:80,NVIDIA L4:24' [default: all].",
        show_default=False,
    ),
]
DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: SQLite in the data dir).", show_default=False),
]


class ExecutorKind(StrEnum):
    process = "process"
    docker = "docker"
    kubernetes = "kubernetes"


class SandboxMode(StrEnum):
    auto = "auto"
    bwrap = "bwrap"
    off = "off"


def serve_host(
    bind: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8080,
    domain: Annotated[str, typer.Option(help="Chutes are served at {user}-{name}.DOMAIN.")] = "localhost",
    db: DbOpt = None,
    executor: Annotated[ExecutorKind, typer.Option(help="How instances run.")] = ExecutorKind.process,
    data_dir: DataDirOpt = None,
    log_level: Annotated[str, typer.Option(help="Server log level.")] = "info",
    max_bundle_mb: Annotated[int, typer.Option(help="Largest bundle upload accepted, in MiB.", min=1)] = 200,
    health_interval: Annotated[
        float, typer.Option(help="Seconds between /_ready checks of a ready instance.", min=0.1)
    ] = 1.0,
    public_url: Annotated[
        str | None,
        typer.Option(
            help="How chute URLs look to users behind a proxy, e.g. 'https://{slug}.chutes.example.com'.",
            show_default=False,
        ),
    ] = None,
    base_image: Annotated[
        str | None,
        typer.Option(
            help="docker executor: image chute builds start FROM [default: $CHUTES_BASE_IMAGE].", show_default=False
        ),
    ] = None,
    docker_memory: Annotated[
        str, typer.Option(help="docker executor: memory limit of each instance, e.g. 8g or 512m.")
    ] = "8g",
    docker_pids: Annotated[
        int, typer.Option(help="docker executor: most processes and threads in each instance.", min=16)
    ] = 1024,
    sandbox: Annotated[
        SandboxMode,
        typer.Option(
            help="process executor: confine chutes with bubblewrap; 'auto' falls back to none (one user only) "
            "when it cannot, 'bwrap' refuses to start then, 'off' never sandboxes."
        ),
    ] = SandboxMode.auto,
    sandbox_uids: Annotated[
        str,
        typer.Option(help="process executor, host run as root: the uids chutes run as, one per chute (FIRST-LAST)."),
    ] = "3000000-3099999",
    build_index_url: Annotated[
        str | None,
        typer.Option(
            help="process executor: the package index chutes' requirements.txt install from, without credentials "
            "(pip's own settings and config files are never used there, as build code could read them); "
            "'none' for no index [default: PyPI].",
            show_default=False,
        ),
    ] = None,
    unsafe_shared_process: Annotated[
        bool,
        typer.Option(
            "--unsafe-shared-process",
            help="process executor without a sandbox: let several users deploy although their chutes can read "
            "the host's secrets and database and each other's files.",
        ),
    ] = False,
    gpus: GpusOpt = None,
    wake_timeout: Annotated[
        float,
        typer.Option(help="Seconds a request to a chute scaled to zero (or starting) waits for it, then 503.", min=0),
    ] = 60.0,
    queue_timeout: Annotated[
        float,
        typer.Option(help="Seconds a request finding every instance busy waits for a new one, then goes on.", min=0),
    ] = 10.0,
    queue_limit: Annotated[
        int, typer.Option(help="Requests per chute that may wait at once (for a wake-up or a free instance).", min=0)
    ] = 64,
    scale_up_after: Annotated[
        float,
        typer.Option(help="Seconds a chute's load must stay above its scaling threshold to add an instance.", min=0.1),
    ] = 5.0,
    scale_down_after: Annotated[
        float,
        typer.Option(help="Seconds one instance fewer must have sufficed before one is stopped.", min=0.1),
    ] = 60.0,
    metrics_key: Annotated[
        str | None,
        typer.Option(
            help="Serve the host's /_metrics to requests carrying this key [default: $CHUTES_METRICS_KEY; "
            "unset: no metrics].",
            show_default=False,
        ),
    ] = None,
    job_quota_mb: Annotated[
        int,
        typer.Option(help="Outputs of finished jobs each user may keep, in MiB; past it new jobs are refused.", min=1),
    ] = 10 * 1024,
    job_max_outputs: Annotated[
        int,
        typer.Option(
            help="Files and directories a job may leave in its output_dir; past it the job fails and its "
            "outputs are removed.",
            min=1,
        ),
    ] = 10_000,
    kubeconfig: Annotated[
        Path | None,
        typer.Option(
            help="kubernetes executor: the cluster's kubeconfig [default: the in-cluster service account, "
            "else $KUBECONFIG or ~/.kube/config].",
            show_default=False,
        ),
    ] = None,
    namespace: Annotated[
        str, typer.Option(help="kubernetes executor: the namespace the host's chutes run in (it must exist).")
    ] = "chutes",
    registry: Annotated[
        str | None,
        typer.Option(
            help="kubernetes executor: push chute images built here to this registry (HOST[:PORT]), which the "
            "cluster pulls from; without it, chutes deploy with --image REF.",
            show_default=False,
        ),
    ] = None,
    pod_cpu: Annotated[str, typer.Option(help="kubernetes executor: CPU each pod requests, e.g. 1 or 500m.")] = "1",
    pod_memory: Annotated[
        str, typer.Option(help="kubernetes executor: memory each pod requests (and is limited to), e.g. 8Gi.")
    ] = "8Gi",
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            help="Behind a TLS proxy: the proxy's addresses (comma-separated), whose X-Forwarded-For names the "
            "client. By default the connection's peer is the client.",
            show_default=False,
        ),
    ] = None,
    direct_gateway: Annotated[
        bool,
        typer.Option(
            help="Forward requests that need no waiting straight from the HTTP server's callbacks (about twice "
            "the gateway's throughput); --no-direct-gateway sends every request through the ASGI gateway.",
        ),
    ] = True,
    single_tenant: Annotated[
        bool,
        typer.Option(
            "--single-tenant",
            help="Declare that every chute on this host is trusted like the host itself (one operator's own "
            "chutes): needed by --stream-handoff.",
        ),
    ] = False,
    stream_handoff: Annotated[
        bool,
        typer.Option(
            help="Single-tenant hosts (--single-tenant), process and docker executors: hand the client connection "
            "of a request to a streaming cord to its instance, which writes the stream itself; the chute then "
            "holds a TCP socket of the host's network. Off: the gateway relays every stream.",
        ),
    ] = False,
    dashboard_over_http: Annotated[
        bool,
        typer.Option(
            "--dashboard-over-http",
            help="Let the dashboard sign people in over plain HTTP on the host's domain, although any chute's page "
            "on a subdomain can then set the dashboard's cookies (and sign a visitor into its author's session). "
            "Without it, plain HTTP works only at localhost and loopback addresses; elsewhere use a TLS proxy "
            "named with --forwarded-allow-ips.",
        ),
    ] = False,
) -> None:
    """Run the host: control API, gateway and every deployed chute, until Ctrl-C or SIGTERM.

    Example: chutes host serve --port 8080 --domain localhost
    """
    import logging

    import uvicorn
    from sqlalchemy.exc import SQLAlchemyError

    from chutes.protocol import server_options
    from chutes.serve import bind_socket
    from chutes_cli.errors import CLIError
    from chutes_host.app import HostServer, create_app
    from chutes_host.executors import ExecutorError
    from chutes_host.gateway.fastpath import GatewayProtocol
    from chutes_host.sandbox.pipconfig import IndexUrlError, check_index_url
    from chutes_host.scheduling.gpus import GpuSpecError
    from chutes_host.scheduling.scaler import ScalePolicy

    if stream_handoff and not single_tenant:
        raise CLIError(
            "--stream-handoff gives each chute its clients' TCP connections, sockets of the host's network that "
            "a chute can re-connect anywhere the host reaches, and whose next requests (with their keys) it can "
            "read; it is for hosts whose chutes are all the operator's own. Add --single-tenant to declare that, "
            "or leave --stream-handoff out (the gateway then relays streams).",
            exit_code=2,
        )
    if public_url is not None:
        check_public_url(public_url, domain)
    try:
        check_index_url(build_index_url)
    except IndexUrlError as exc:
        raise CLIError(str(exc), exit_code=2) from None
    check_pod_resources(pod_cpu, pod_memory, namespace)
    if not re.fullmatch(r"[1-9][0-9]*[kmg]?", docker_memory.lower()):
        raise CLIError(f"--docker-memory {docker_memory!r} is not a size like 8g, 512m or 1073741824", exit_code=2)
    config = _config(
        data_dir,
        db,
        bind=bind,
        port=port,
        domain=domain,
        executor=executor.value,
        max_bundle_bytes=max_bundle_mb << 20,
        health_interval=health_interval,
        public_url=public_url,
        docker_base_image=base_image or os.environ.get("CHUTES_BASE_IMAGE"),
        docker_memory=docker_memory.lower(),
        docker_pids=docker_pids,
        sandbox=sandbox.value,
        sandbox_uids=parse_uid_range(sandbox_uids),
        build_index_url=build_index_url,
        unsafe_shared_process=unsafe_shared_process,
        gpus=gpus,
        metrics_key=metrics_key or os.environ.get("CHUTES_METRICS_KEY") or None,
        job_quota_bytes=job_quota_mb << 20,
        job_max_outputs=job_max_outputs,
        scaling=ScalePolicy(
            up_after=scale_up_after,
            down_after=scale_down_after,
            wake_timeout=wake_timeout,
            queue_timeout=queue_timeout,
            queue_limit=queue_limit,
        ),
        kubeconfig=str(kubeconfig) if kubeconfig else None,
        k8s_namespace=namespace,
        k8s_cpu=pod_cpu,
        k8s_memory=pod_memory,
        registry=registry,
        direct_gateway=direct_gateway,
        stream_handoff=stream_handoff and direct_gateway,  # the direct path hands streams over
        dashboard_over_http=dashboard_over_http,
    )
    os.umask(0o077)  # everything the host writes (database, bundles, logs) is its own
    sock = bind_socket(bind, port)
    sock.set_inheritable(False)  # nothing the host starts (pip, instances) may accept() its control API
    try:
        app = create_app(config)
    except ExecutorError as exc:
        sock.close()
        raise CLIError(str(exc)) from None
    except GpuSpecError as exc:
        sock.close()
        raise CLIError(str(exc), exit_code=2) from None
    except (SQLAlchemyError, ValueError) as exc:
        sock.close()
        raise _database_error(config, exc) from None
    except OSError as exc:
        sock.close()
        raise CLIError(f"cannot prepare the data dir {config.data_dir}: {exc}. Check --data-dir.") from None
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    typer.echo(
        f"chutes host on http://{bind}:{port} (API under /api/v1, chutes at http://USER-NAME.{domain}:{port}), "
        f"executor {executor.value}, data in {config.data_dir}",
        err=True,
    )
    # the client is the connection's peer unless it is a proxy named here; the gateway then sets
    # X-Forwarded-For for instances from that client, never from what the client sent
    options = server_options(GatewayProtocol)
    if forwarded_allow_ips:
        options.update(proxy_headers=True, forwarded_allow_ips=forwarded_allow_ips)
    else:
        options.update(proxy_headers=False)
    server = HostServer(
        uvicorn.Config(app, log_level=log_level, lifespan="on", access_log=False, **options),
        stopping=app.state.stopping,
    )
    server.run(sockets=[sock])


def check_pod_resources(cpu: str, memory: str, namespace: str) -> None:
    """Fails (usage error) unless the pod sizes are Kubernetes quantities and the namespace a DNS label."""
    from chutes_cli.errors import CLIError

    if not re.fullmatch(r"[1-9][0-9]*m?|[0-9]+\.[0-9]+", cpu):
        raise CLIError(f"--pod-cpu must be a CPU quantity like 1, 2 or 500m; got {cpu!r}.", exit_code=2)
    if not re.fullmatch(r"[1-9][0-9]*(Ki|Mi|Gi|Ti|k|M|G|T)?", memory):
        raise CLIError(f"--pod-memory must be a memory quantity like 8Gi or 512Mi; got {memory!r}.", exit_code=2)
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", namespace):
        raise CLIError(
            f"--namespace must be a Kubernetes namespace name (lowercase letters, digits and '-'); got {namespace!r}.",
            exit_code=2,
        )


def parse_uid_range(text: str) -> range:
    """Takes 'FIRST-LAST', and returns the range of uids (a usage error unless 1000 <= FIRST <= LAST)."""
    from chutes_cli.errors import CLIError

    first, _, last = text.partition("-")
    try:
        uids = range(int(first), int(last) + 1)
    except ValueError:
        uids = range(0)
    if not uids or uids.start < 1000 or uids.stop > 2**32 - 1:
        raise CLIError(
            f"--sandbox-uids must be FIRST-LAST with 1000 <= FIRST <= LAST < 4294967295, e.g. 3000000-3099999; "
            f"got {text!r}.",
            exit_code=2,
        )
    return uids


def show_gpus(
    gpus: GpusOpt = None,
    data_dir: DataDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the inventory as JSON.")] = False,
) -> None:
    """List the host's GPUs and the instance each is assigned to (as the host last recorded it).

    Example: chutes host gpus --gpus '2xNVIDIA L4:24'
    """
    import json

    from chutes_cli.errors import CLIError
    from chutes_host.scheduling.gpus import GpuSpecError, load_inventory

    config = _config(data_dir, None)
    recorded: dict = {}
    if config.gpus_file.is_file():
        try:
            recorded = json.loads(config.gpus_file.read_text())
        except ValueError:
            typer.echo(f"note: ignoring unreadable {config.gpus_file}", err=True)
    if gpus is None and recorded.get("gpus") is not None:
        shown = recorded
    else:
        try:
            inventory = load_inventory(gpus)
        except GpuSpecError as exc:
            raise CLIError(str(exc), exit_code=2) from None
        holders = {g.get("uuid"): g.get("holder") for g in recorded.get("gpus", [])}
        shown = {
            "source": inventory.source,
            "note": inventory.note,
            "gpus": [{**g.describe(), "mig": g.mig, "holder": holders.get(g.uuid)} for g in inventory.gpus],
            "pending": recorded.get("pending", []),
        }
    if as_json:
        typer.echo(json.dumps(shown, indent=2))
        return
    if not shown["gpus"]:
        typer.echo(f"No GPUs ({shown.get('note') or shown['source']}).", err=True)
    for gpu in shown["gpus"]:
        mig = "  MIG" if gpu.get("mig") else ""
        typer.echo(
            f"{gpu['index']}\t{gpu['name']}\t{gpu['memory_gb']:.0f} GB\t{gpu['uuid']}{mig}\t{gpu['holder'] or 'free'}"
        )
    for name in shown.get("pending", []):
        typer.echo(f"pending\t{name}\twaiting for GPUs")


def check_public_url(template: str, domain: str) -> None:
    """Fails (usage error) unless the template holds {slug} and nothing else in braces."""
    from chutes_cli.errors import CLIError

    try:
        ok = "{slug}" in template and template.format(slug="s") != template
    except (KeyError, IndexError, ValueError):
        ok = False
    if not ok:
        raise CLIError(
            f"--public-url must contain {{slug}} and no other braces, e.g. 'https://{{slug}}.{domain}'; "
            f"got {template!r}.",
            exit_code=2,
        )


def add_user(
    name: Annotated[str, typer.Argument(help="The user name; it prefixes the user's chutes' hostnames.")],
    data_dir: DataDirOpt = None,
    db: DbOpt = None,
) -> None:
    """Create a user and print their first API key (shown only this once).

    Example: chutes host users add alice
    """
    from chutes_host.store import accounts

    with _session(data_dir, db) as session:
        user, key = _account_call(accounts.add_user, session, name)
        name = user.name  # case-folded
    typer.echo(key)
    typer.echo(f"Created user {name!r}. Keep the key above: it is not stored and cannot be shown again.", err=True)


def list_users(data_dir: DataDirOpt = None, db: DbOpt = None) -> None:
    """List users and how many active keys each has."""
    from chutes_host.store import accounts

    with _session(data_dir, db) as session:
        for user in accounts.list_users(session):
            active = sum(1 for k in user.keys if k.revoked_at is None)
            typer.echo(f"{user.name}\t{active} active key(s)\tcreated {user.created_at:%Y-%m-%d %H:%M}")


def create_key(
    user: Annotated[str, typer.Argument(help="The user the key is for.")],
    label: Annotated[str, typer.Option(help="A note to tell keys apart.")] = "",
    data_dir: DataDirOpt = None,
    db: DbOpt = None,
) -> None:
    """Create another API key for a user and print it (shown only this once)."""
    from chutes_host.store import accounts

    with _session(data_dir, db) as session:
        key = _account_call(lambda s: accounts.create_key(s, accounts.get_user(s, user), label=label), session)
    typer.echo(key)


def list_keys(
    user: Annotated[str, typer.Argument(help="Whose keys to list.")],
    data_dir: DataDirOpt = None,
    db: DbOpt = None,
) -> None:
    """List a user's keys by prefix (the secret part is never stored)."""
    from chutes_host.store import accounts

    with _session(data_dir, db) as session:
        keys = _account_call(lambda s: accounts.list_keys(s, accounts.get_user(s, user)), session)
        for key in keys:
            state = "revoked" if key.revoked_at else "active"
            typer.echo(f"cpk_{key.prefix}_…\t{state}\t{key.created_at:%Y-%m-%d %H:%M}\t{key.label}")


def revoke_key(
    prefix: Annotated[str, typer.Argument(help="The key's prefix (as `keys list` shows) or the whole key.")],
    data_dir: DataDirOpt = None,
    db: DbOpt = None,
) -> None:
    """Revoke a key; requests with it are refused from then on."""
    from chutes_host.store import accounts

    with _session(data_dir, db) as session:
        key = _account_call(accounts.revoke_key, session, prefix)
        typer.echo(f"Revoked key cpk_{key.prefix}_…", err=True)


def _config(data_dir: Path | None, db: str | None, **kwargs):
    from chutes_host.config import HostConfig, default_data_dir

    return HostConfig(data_dir=(data_dir or default_data_dir()).expanduser().resolve(), db_url=db, **kwargs)


def _session(data_dir: Path | None, db: str | None):
    from sqlalchemy.exc import SQLAlchemyError

    from chutes_host.app import make_data_dir_private
    from chutes_host.store.db import Database

    config = _config(data_dir, db)
    try:
        make_data_dir_private(config)
        database = Database(config.database_url)
    except (SQLAlchemyError, ValueError, OSError) as exc:
        raise _database_error(config, exc) from None
    return database.session()


def _database_error(config, exc: Exception):
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from chutes_cli.errors import CLIError

    try:
        shown = make_url(config.database_url).render_as_string(hide_password=True)
    except ArgumentError:
        shown = "(unparsable URL)"
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return CLIError(f"cannot open the database {shown}: {reason}. Check --db (and --data-dir).")


def _account_call(fn, *args):
    from chutes_cli.errors import CLIError
    from chutes_host.store.accounts import AccountError

    try:
        return fn(*args)
    except AccountError as exc:
        raise CLIError(str(exc)) from None


def register(app: typer.Typer) -> None:
    host = typer.Typer(help="Run a chutes host and manage its users and keys.", no_args_is_help=True)
    users = typer.Typer(help="Users of this host (run on the host machine).", no_args_is_help=True)
    keys = typer.Typer(help="API keys of this host's users (run on the host machine).", no_args_is_help=True)
    host.command("serve")(serve_host)
    host.command("gpus")(show_gpus)
    users.command("add")(add_user)
    users.command("list")(list_users)
    keys.command("create")(create_key)
    keys.command("list")(list_keys)
    keys.command("revoke")(revoke_key)
    host.add_typer(users, name="users")
    host.add_typer(keys, name="keys")
    app.add_typer(host, name="host")
