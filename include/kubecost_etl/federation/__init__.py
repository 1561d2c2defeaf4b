"""Federated ETL: each cluster's ETL files mirrored raw into Kubecost's federated (or durable) bucket layout.

`settings` (the config block), `layout` (keys), `plan` (what changed), `push` (pod -> bucket),
`owner` (the writer's marker), `verify` (bucket vs pod), `retention` (age-based deletes),
`pipeline.federate()` for all of them in one call.
"""
