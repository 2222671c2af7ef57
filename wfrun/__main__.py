"""`python -m wfrun`: the same as the `wfrun` command."""

from wfrun.cli import main

main()
