"""`python -m tierwise` = the `tierwise` command."""

from tierwise.cli import app

app()
