"""The backup repository: content-addressed objects, manifests, verification, pinned reads."""
