"""Command line: ``python -m kubecost_sim serve ...`` and ``python -m kubecost_sim generate-etl ...``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from dataclasses import fields
from pathlib import Path

from .faults import Faults


def _fault_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per fault switch (``exec_cut_after_bytes`` -> ``--exec-cut-after-bytes``)."""
    group = parser.add_argument_group("faults (also settable at runtime: POST /_sim/faults)")
    for switch in fields(Faults):
        flag = "--" + switch.name.replace("_", "-")
        kind = str(switch.type)
        if kind.startswith("list"):
            group.add_argument(
                flag, dest=f"fault_{switch.name}", action="append", metavar="NAME", help="repeatable"
            )
        else:
            convert = int if kind.startswith("int") else float if kind.startswith("float") else str
            group.add_argument(
                flag, dest=f"fault_{switch.name}", type=convert, metavar=convert.__name__.upper()
            )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubecost-sim", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the simulated cluster until SIGTERM/SIGINT")
    serve.add_argument("--port", type=int, default=0, help="Kubernetes API port (0: any free port)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument(
        "--etl-dir",
        type=Path,
        required=True,
        help="host folder named 'etl' the pod sees as /var/configs/db/etl",
    )
    serve.add_argument("--kubeconfig", type=Path, required=True, help="where to write the kubeconfig")
    serve.add_argument("--request-log", type=Path, help="JSON-lines log of every request received")
    serve.add_argument("--prometheus-retention", default="15d")
    serve.add_argument(
        "--prometheus-retention-size",
        metavar="SIZE",
        help="a size limit Prometheus reports besides the time (e.g. 10GiB: '15d or 10GiB')",
    )
    serve.add_argument(
        "--hourly-hours", type=int, default=49, help="cost-model's etlHourlyStoreDurationHours"
    )
    serve.add_argument(
        "--no-tar", action="store_true", help="the cost-model container has no tar (current images)"
    )
    serve.add_argument("--costmodel-port", type=int, default=0, help="the model API (9003 in the pod)")
    serve.add_argument(
        "--frontend-port", type=int, default=0, help="the frontend (9090 in the pod, /model/...)"
    )
    serve.add_argument("--prometheus-port", type=int, default=0)
    serve.add_argument("--token", help="bearer token the API accepts (default: random)")
    serve.add_argument(
        "--work-dir", type=Path, help="where the pods' scratch folders live (default: a temp dir)"
    )
    serve.add_argument(
        "--plain-http",
        action="store_true",
        help="serve the API over http (kubectl then sends no token: see server.py)",
    )
    serve.add_argument(
        "--rbac-role",
        type=Path,
        metavar="FILE",
        help="enforce this Role (YAML; may also hold its ServiceAccount and RoleBinding): "
        "requests it does not grant get 403, as from a real API server",
    )
    serve.add_argument("--log-level", default="INFO")
    _fault_flags(serve)

    generate = commands.add_parser("generate-etl", help="write a Kubecost ETL tree")
    generate.add_argument("--dir", type=Path, required=True)
    generate.add_argument("--days", type=int, default=91)
    generate.add_argument("--hourly-hours", type=int, default=49)
    generate.add_argument("--file-bytes", type=int, default=4096)
    generate.add_argument("--seed", type=int, default=1)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "generate-etl":
        from .etlgen import generate

        written = generate(
            args.dir,
            days=args.days,
            hourly_hours=args.hourly_hours,
            file_bytes=args.file_bytes,
            seed=args.seed,
        )
        print(
            json.dumps(
                {
                    "dir": str(args.dir),
                    "files": len(written),
                    "bytes": sum(path.stat().st_size for path in written),
                }
            )
        )
        return 0

    from .server import ServeOptions, serve

    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    faults = {
        switch.name: getattr(args, f"fault_{switch.name}")
        for switch in fields(Faults)
        if getattr(args, f"fault_{switch.name}") is not None
    }
    options = ServeOptions(
        etl_dir=args.etl_dir.resolve(),
        kubeconfig=args.kubeconfig.resolve(),
        port=args.port,
        host=args.host,
        costmodel_port=args.costmodel_port,
        frontend_port=args.frontend_port,
        prometheus_port=args.prometheus_port,
        request_log=args.request_log,
        no_tar=args.no_tar,
        prometheus_retention=args.prometheus_retention,
        prometheus_retention_size=args.prometheus_retention_size,
        hourly_hours=args.hourly_hours,
        token=args.token,
        work_dir=args.work_dir,
        plain_http=args.plain_http,
        faults=faults,
        rbac_role=args.rbac_role,
    )

    def announce(urls: dict) -> None:
        print(json.dumps(urls), flush=True)  # the one line on stdout: tests wait for it

    try:
        asyncio.run(serve(options, announce))
    except ValueError as error:  # bad options (e.g. --etl-dir not named etl)
        print(f"kubecost-sim: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
