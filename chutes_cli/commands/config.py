"""`chutes config show|set`: read and change the CLI configuration."""

from __future__ import annotations

import json
from typing import Annotated

import typer

config_app = typer.Typer(
    name="config",
    help="Show or change the CLI configuration (~/.chutes/config.toml).\n\nExample: chutes config set api_url http://127.0.0.1:8080",
    no_args_is_help=True,
)


@config_app.command("show")
def show_config(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Show the configuration in effect (keys masked).

    Example: chutes config show
    """
    from chutes_cli.config import ENV_VARS, KEYS, load_config, mask_secret
    from chutes_cli.errors import fail

    config = load_config()
    if not config.path.exists() and not config.sources:
        fail(
            f"no configuration: {config.path} does not exist and "
            f"{' / '.join(ENV_VARS.values())} are not set. Create it with "
            "`chutes config set api_url http://127.0.0.1:8080`."
        )
    values = {key: getattr(config, key) for key in KEYS}
    shown = {key: mask_secret(v) if key == "api_key" and v else v for key, v in values.items()}
    if as_json:
        typer.echo(json.dumps({"path": str(config.path), **shown, "sources": config.sources}))
        return
    typer.echo(f"config file: {config.path}" + ("" if config.path.exists() else " (missing)"))
    for key, value in shown.items():
        source = config.sources.get(key)
        suffix = f"  (from {source})" if source else ""
        typer.echo(f"{key} = {value if value is not None else '(not set)'}{suffix}")


@config_app.command("set")
def set_config(
    key: Annotated[str, typer.Argument(help="api_url or api_key.", metavar="KEY")],
    value: Annotated[str, typer.Argument(help="The new value.", metavar="VALUE")],
) -> None:
    """Set one configuration value.

    The file is rewritten atomically with mode 0600.

    Example: chutes config set api_url http://127.0.0.1:8080
    """
    from chutes_cli.config import SECRET_KEYS, mask_secret, set_config_value

    path = set_config_value(key, value)
    shown = mask_secret(value) if key in SECRET_KEYS else value
    typer.echo(f"{key} = {shown}  (saved to {path})")


def register(app: typer.Typer) -> None:
    """Adds the `config` group to `app`."""
    app.add_typer(config_app)
