"""pbrsim's version: one place, read by the package metadata (pyproject.toml) and written into every manifest."""

__version__ = "0.1.0"
