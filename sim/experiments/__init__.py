"""Many runs: the replication seed rule and loop, executors (serial, processes, Dask), the
resumable result store, replications, comparisons of contract designs, sweeps and sensitivity analysis,
uncertainty draws, calibration, validation, the provider's runs (the cash fixed point, the pilot run) and the
contract audit.
"""
