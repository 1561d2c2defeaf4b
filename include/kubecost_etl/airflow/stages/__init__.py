"""Task callables: each stage of a pipeline as a function of JSON-friendly values."""
