"""SLURM as a job source, with no admin help: the client tools, their output, the states in words."""
