"""The vocabulary and machinery every layer uses: the domain's names (bands, groups, states, exits), the
calendar, the client-keyed random streams, the parameter distributions, pbrsim's user errors, safe results
folders and the version. Imports nothing of pbrsim.
"""
