"""Read the Thanos-format `object-store.yaml` that Kubecost users already have, and build a store from it.

    type: S3            # S3, GCS, AZURE or FILESYSTEM (any case)
    config: {...}       # the provider's settings
    prefix: tenant-a    # optional, TOP-LEVEL (a `prefix` inside `config` is a known mistake: refused)

Unknown keys are errors, as in Thanos itself (it parses strictly), with a "did you mean"
hint: a typo such as `secert_key` must not silently fall back to other credentials. Keys
Thanos knows but this project does not use (tracing, HTTP pool tuning...) are accepted and
logged as ignored, so the same file keeps working for Kubecost and for us.

Secrets never reach a repr or an error message: config reprs redact them, errors name keys
but never echo values, and YAML errors report only a line and column (PyYAML's own message
would quote the offending line, which may hold a key).

Modules: ``models`` (the config dataclasses), ``parse`` (``load_objstore_config``,
``parse_objstore_config``), ``build`` (``build_store``).
"""
