"""The backup pipeline: plan, stream, commit (verification lives with the repository in snapshots/)."""
