"""The `chutes` command line: serve, call, scaffold and configure chutes (Typer)."""
