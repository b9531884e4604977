"""``python -m mlops_lr``: see :mod:`mlops_lr.cli`."""

from mlops_lr.cli import main

if __name__ == "__main__":
    main()
