"""Results written for people: plots, the run summary and results folder, the audit report and the
behaviour-sweep outputs.
"""
