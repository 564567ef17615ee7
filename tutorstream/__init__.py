"""tutorstream wiring: settings, the command line and the embedded stack launcher."""

__version__ = "0.1.0"
