"""``python -m rawrt``: see :mod:`rawrt.cli`."""

from .cli import main

main()
