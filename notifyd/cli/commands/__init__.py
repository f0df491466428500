"""One module per `notifyd` verb; each exposes `command` (typer) and a docstring as help."""
