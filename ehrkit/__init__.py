"""ehrkit: command-line toolkit for foundation models on electronic health records."""

__version__ = "0.1.0"
