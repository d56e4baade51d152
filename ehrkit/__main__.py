"""`python -m ehrkit` and `torchrun ... -m ehrkit` both land here."""

from ehrkit.cli import main

if __name__ == "__main__":
    main()
