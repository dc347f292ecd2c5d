"""`vsd` console script.

    vsd serve --host H --port P --db URL [--tls-cert F --tls-key F] [--root-user U] [--root-password PW]
              [--apikey-lifetime SECONDS] [--config /etc/vsplab/vsd.yaml]   (the file: any of these options)
    vsd show TYPE [ID]          e.g. `vsd show enterprises`, `vsd show subnet 1b2c...`
    vsd export ENTERPRISE > acme.yaml
    vsd import acme.yaml [--as NEWNAME]
    vsd audit [--limit N]

`show`, `export`, `import` and `audit` talk to a running VSD through its API (`--api URL`, default
$VSD_API or http://127.0.0.1:8443/nuage/api/v6, as `--user`/`--password`/`--org`, default csproot in
csp); with `--db URL` instead they start a private VSD on that database for the duration of the command
(the database must not be served by another VSD at the same time).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

import orjson
import yaml

from daemonconf import journal_logging, mark_subparser, parse_with_config
from vsd.schema import RESOURCE, RESOURCE_TO_ENTITY


def _client(args):
    from vsd.client import VsdClient

    stack = contextlib.ExitStack()
    if args.db:
        from vsd.server import EmbeddedVsd

        # started without a root password: a command only reads or adds, it never resets the root's
        # (a new database gets the lab default, which the command's default --password matches)
        vsd = stack.enter_context(EmbeddedVsd(db_url=args.db, password=None))
        return stack, VsdClient(vsd.api, args.user, args.password, args.org)
    return stack, VsdClient(args.api, args.user, args.password, args.org)


def _cmd_serve(args) -> int:
    from vsd.server import serve

    if bool(args.tls_cert) != bool(args.tls_key):
        print("vsd serve: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    journal_logging()
    serve(args.host, args.port, args.db, args.tls_cert, args.tls_key, args.root_password, args.retention,
          args.root_user, fd=args.fd, apikey_lifetime=args.apikey_lifetime)
    return 0


def _cmd_show(args) -> int:
    resource = args.type if args.type in RESOURCE_TO_ENTITY else RESOURCE.get(args.type)
    if resource is None:
        print(f"vsd show: unknown type {args.type!r}", file=sys.stderr)
        return 2
    stack, client = _client(args)
    with stack:
        result = client.get(f"{resource}/{args.id}") if args.id else client.list(resource, filter=args.filter)
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _cmd_export(args) -> int:
    from vsd.yamlio import export_enterprise

    stack, client = _client(args)
    with stack:
        doc = export_enterprise(client, args.enterprise)
    yaml.safe_dump(doc, sys.stdout, sort_keys=False)
    return 0


def _cmd_import(args) -> int:
    from vsd.yamlio import import_enterprise

    with open(args.file) as f:
        doc = yaml.safe_load(f)
    stack, client = _client(args)
    with stack:
        counts = import_enterprise(client, doc, name=args.name)
    print(", ".join(f"{n} {k}" for k, n in counts.items()))
    return 0


def _cmd_audit(args) -> int:
    stack, client = _client(args)
    with stack:
        rows = client.audit(args.limit)
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["ts"]))
        first = " ".join(r["actions"][0]) if r["actions"] else ""
        more = f" (+{len(r['actions']) - 1} more)" if len(r["actions"]) > 1 else ""
        print(f"{when}Z {r['organization']}/{r['user_name']} {r['request']}: {first}{more} "
              f"r{r['first_revision']}..{r['last_revision']}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vsd", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = mark_subparser(sub.add_parser("serve", help="run the VSD"))
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8443)
    s.add_argument("--db", default="sqlite:///vsd.db",
                   help="sqlite:///path (one VSD per file) or postgresql://user@host/db (any number of VSDs on "
                   "one database: a cluster, see vsd/README.md)")
    s.add_argument("--tls-cert")
    s.add_argument("--tls-key")
    s.add_argument("--root-user", default="csproot", help="the CSP root's name when the database is new")
    s.add_argument("--root-password", help="the CSP root's password, on a new or an existing database "
                   "(default $VSD_ROOT_PASSWORD; a new database without one gets the lab default 'csproot', "
                   "which a VSD listening beyond loopback refuses)")
    s.add_argument("--apikey-lifetime", type=float, default=86_400.0,
                   help="seconds an API key lives after the login that handed it out (default a day)")
    s.add_argument("--retention", type=int, default=1_000_000, help="change-stream events kept")
    s.add_argument("--fd", type=int, help="serve on this inherited listening socket instead of --host/--port")
    s.set_defaults(func=_cmd_serve)

    def client_args(q):
        q.add_argument("--api", default=os.environ.get("VSD_API", "http://127.0.0.1:8443/nuage/api/v6"))
        q.add_argument("--db", help="start a private VSD on this database instead of using --api")
        q.add_argument("--user", default="csproot")
        q.add_argument("--password", default=os.environ.get("VSD_PASSWORD", "csproot"))
        q.add_argument("--org", default="csp")

    s = sub.add_parser("show", help="print objects as JSON")
    s.add_argument("type", help="entity or resource name: enterprise(s), subnet(s), vport(s)...")
    s.add_argument("id", nargs="?")
    s.add_argument("--filter", help='X-Nuage-Filter, e.g. name == "web"')
    client_args(s)
    s.set_defaults(func=_cmd_show)
    s = sub.add_parser("export", help="write an enterprise as YAML")
    s.add_argument("enterprise")
    client_args(s)
    s.set_defaults(func=_cmd_export)
    s = sub.add_parser("import", help="create an enterprise from a YAML export")
    s.add_argument("file")
    s.add_argument("--as", dest="name", help="create it under this enterprise name instead")
    client_args(s)
    s.set_defaults(func=_cmd_import)
    s = sub.add_parser("audit", help="print the audit log (CSP root only)")
    s.add_argument("--limit", type=int, default=100)
    client_args(s)
    s.set_defaults(func=_cmd_audit)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parse_with_config(parser(), argv)
    from vsd.client import VsdApiError

    try:
        return args.func(args)
    except VsdApiError as e:
        print(f"vsd {args.command}: {e}", file=sys.stderr)
        return 1
