"""The prune pipeline: retention policy (restic ``forget`` semantics), then two-phase garbage collection."""
