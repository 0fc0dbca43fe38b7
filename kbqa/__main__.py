"""python -m kbqa: the same as the kbqa command."""

from kbqa.cli import main

main()
