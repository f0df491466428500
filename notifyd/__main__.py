"""`python -m notifyd` runs the CLI; this is how pingch and `ensure` start a watcher."""

from notifyd.cli.app import main

main()
