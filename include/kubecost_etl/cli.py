"""The operators' command line: ``python -m kubecost_etl check-config FILE``.

``check-config`` runs exactly the validation every pipeline run starts with (``load_config``: every
key, every cluster, the object-store references, the repair settings and the ``backup_schedule``
as a cron expression or preset). It prints a short summary and exits 0, or prints the error (naming
the cluster and the field, never a secret) and exits 1. It reads only local files: no cluster, no
bucket and no Airflow connection is contacted; so an object store given as a connection (``conn_id``)
is checked by the runs' first task, which can read Airflow's connections. Thanos-format stores
(``config_file`` or inline ``type`` + ``config``) are parsed here as the runs parse them.
"""

from __future__ import annotations

import argparse
import sys

from kubecost_etl.errors import ConfigError
from kubecost_etl.redact import redact

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kubecost_etl", description="Kubecost ETL operations tools."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "check-config", help="validate a configuration file (as every run does first)"
    )
    check.add_argument("file", help="the YAML configuration (what KUBECOST_ETL_CONFIG names)")
    args = parser.parse_args(argv)
    if args.command == "check-config":
        return check_config(args.file)
    return EXIT_USAGE  # pragma: no cover (argparse refuses unknown commands)


def check_config(path: str) -> int:
    from kubecost_etl.config import load_config

    try:
        config = load_config(path)
        check_stores(config)
    except ConfigError as exc:
        print(f"invalid: {redact(exc)}", file=sys.stderr)
        return EXIT_INVALID
    print(f"valid: {config.summary()}")
    return EXIT_OK


def check_stores(config) -> None:
    """Parse every Thanos-format object store the clusters name (no network), naming the cluster on error."""
    from kubecost_etl.storage.base import StorageConfigError
    from kubecost_etl.storage.objstore_config.parse import load_objstore_config, parse_objstore_config

    for cluster in config.clusters:
        ref = cluster.backup.object_store if cluster.backup else None
        if ref is None or ref.conn_id:
            continue
        try:
            if ref.config_file:
                load_objstore_config(ref.config_file)
            else:
                parse_objstore_config(ref.inline, source="inline object_store")
        except StorageConfigError as exc:
            raise ConfigError(f"cluster {cluster.id!r}: backup.object_store: {exc}") from None
