"""One-off runs of a chute's jobs: the runs, their API, inputs, files, and what an executor needs to launch one."""
