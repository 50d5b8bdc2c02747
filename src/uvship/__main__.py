"""`python -m uvship`: the command line."""

from ._entry import main

main()
