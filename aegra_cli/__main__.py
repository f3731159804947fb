"""`python -m aegra_cli` runs the same CLI as the `aegra` script."""

from aegra_cli.app import main

main()
