"""``python -m controlbreast <stage>``: the CLI, also what ``accelerate launch -m controlbreast`` runs."""

from controlbreast.cli import app

app()
