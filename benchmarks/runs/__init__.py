"""Runs: the run store and job record, runs of each kind, specs, the sweep engine and its
launchers."""
