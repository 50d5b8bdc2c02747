"""`python -m uvship`: the command line."""

from .cli import main

main()
