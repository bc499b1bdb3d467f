"""The input files' schemas: a scenario (with its ``[behaviour]`` block), a contract, a sweep spec and a
targets file, read from TOML (``extends`` included) and validated before anything runs. A schema imports no
engine: it says what a run is, not how it runs.
"""
