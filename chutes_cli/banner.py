"""What `chutes run` prints at start: the chute, the URL of each cord and of /docs."""

from __future__ import annotations

from typing import Any

WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})


def base_url(host: str, port: int) -> str:
    """Returns the URL a local client should use for a server bound to host:port."""
    shown = "127.0.0.1" if host in WILDCARD_HOSTS else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def print_banner(chute: Any, *, host: str, port: int, dev: bool, reload: bool) -> None:
    """Prints the chute's slug, mode and a table of its cords with their URLs."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    url = base_url(host, port)
    modes = [name for name, on in (("dev", dev), ("reload", reload)) if on]
    mode = f" [dim]({', '.join(modes)})[/dim]" if modes else ""
    console.print(f"[bold]{chute.slug}[/bold] serving at [cyan]{url}[/cyan]{mode}")
    table = Table(box=None, show_header=True, pad_edge=False)
    table.add_column("method", style="bold")
    table.add_column("url", style="cyan", overflow="fold")
    table.add_column("cord")
    for cord in chute.cords:
        kind = " (stream)" if cord.stream else " (passthrough)" if cord.passthrough else ""
        table.add_row(cord.method, f"{url}{cord.path}", f"{cord.name}{kind}")
    for job in getattr(chute, "jobs", {}).values():
        table.add_row("POST", f"{url}/_jobs/{job.name}", f"{job.name} (job)")
    console.print(table)
    console.print(f"docs: [cyan]{url}/docs[/cyan]")
