"""``python -m hwmatch.cli``: the same as the ``hwmatch`` command."""

from hwmatch.cli import app

app(prog_name="hwmatch")
