"""Training scripts for the embedded models; `python -m miniworld.training all` retrains everything."""
