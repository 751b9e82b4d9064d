"""NHS radiology lookup engine: map free-text RIS exam names to the NHS imaging procedure catalogue."""

__version__ = "0.1.0"
