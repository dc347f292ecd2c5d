"""A fuzz harness for the VSD's REST API, shared by `tests/test_vsd_fuzz.py` (bounded, in CI) and
`benchmarks/vsd_fuzz.py` (the long run).

Requests are generated with hypothesis from the API's own description: the resources and attributes
of `vsd/spec.json` (typed and mistyped values, choices, formats with and without their flaws), paths
built from real IDs of two enterprises' trees, the callers a VSD meets (the CSP root, an enterprise
admin, a read-only user, strangers), the list headers (filters from a small grammar, pages), and junk
anywhere: bytes that are not UTF-8, deep nesting, huge numbers, long text. Whatever is generated, the
VSD must answer below 500."""

from __future__ import annotations

import base64
import json
import re
import string
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx
from hypothesis import strategies as st

from tests.vsd_fixtures import make_user
from vsd.client import VsdClient
from vsd.schema import ENTITIES, MEMBERS, PARENTS, RESOURCE, SPEC
from vsd.server import EmbeddedVsd


@dataclass
class World:
    vsd: EmbeddedVsd
    keys: dict[str, tuple[str, str, str]]  # caller -> (user, API key, organization)
    by_kind: dict[str, list[str]] = field(default_factory=dict)  # entity -> IDs (grows with what fuzz creates)
    passwords: dict[str, str] = field(default_factory=dict)  # caller -> its password, once the fuzz changed it
    home: str = ""  # the admin's and the reader's enterprise (the fuzz may rename it)
    sent: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return [i for ids in self.by_kind.values() for i in ids]

    def add(self, kind: str, oid: str) -> None:
        ids = self.by_kind.setdefault(kind, [])
        if len(ids) < 200:
            ids.append(oid)


def build_world(vsd: EmbeddedVsd) -> World:
    """Two enterprises with a domain each (zones, subnets, vports with VMs, policy groups, ACLs with
    entries, a network macro group), an admin and a reader in the first, and their API keys."""
    root = VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise)
    ids: list[tuple[str, dict]] = []
    try:
        for tag, net in (("a", 10), ("b", 20)):
            ent = root.create("", "enterprises", {"name": f"vl-fuzz-{tag}"})
            e = f"enterprises/{ent['ID']}"
            tmpl = root.create(e, "domaintemplates", {"name": "t"})
            dom = root.create(e, "domains", {"name": "d", "templateID": tmpl["ID"]})
            zone = root.create(f"domains/{dom['ID']}", "zones", {"name": "z"})
            sn = root.create(f"zones/{zone['ID']}", "subnets",
                             {"name": "s", "address": f"10.{net}.0.0", "netmask": "255.255.255.0"})
            vps = root.create(f"subnets/{sn['ID']}", "vports", [{"name": f"v{i}", "type": "VM"} for i in range(3)])
            vm = root.create("", "vms", {"name": "vm", "UUID": str(uuid.uuid4()), "interfaces": [
                {"name": "eth0", "MAC": f"02:00:00:00:{net:02x}:01", "VPortID": vps[0]["ID"]}]})
            pg = root.create(f"domains/{dom['ID']}", "policygroups", {"name": "pg", "type": "SOFTWARE"})
            root.assign(f"policygroups/{pg['ID']}/vports", [vps[0]["ID"]])
            acl = root.create(f"domains/{dom['ID']}", "ingressacltemplates", {"name": "in"})
            entry = root.create(f"ingressacltemplates/{acl['ID']}", "ingressaclentrytemplates", {
                "action": "FORWARD", "locationType": "POLICYGROUP", "locationID": pg["ID"], "networkType": "ANY",
                "protocol": "6", "destinationPort": "80"})
            enet = root.create(e, "enterprisenetworks", {"name": "n", "address": "192.168.0.0",
                                                          "netmask": "255.255.255.0"})
            nmg = root.create(e, "networkmacrogroups", {"name": "g"})
            ids += [("enterprise", ent), ("domaintemplate", tmpl), ("domain", dom), ("zone", zone), ("subnet", sn),
                    *(("vport", v) for v in vps), ("vm", vm), ("vminterface", vm["interfaces"][0]),
                    ("policygroup", pg), ("ingressacltemplate", acl), ("ingressaclentrytemplate", entry),
                    ("enterprisenetwork", enet), ("networkmacrogroup", nmg)]
        ent_a = ids[0][1]["ID"]
        users = {"admin": make_user(root, ent_a, "vl-fuzz-admin", "ORGADMIN"),
                 "reader": make_user(root, ent_a, "vl-fuzz-reader", "ORGUSER")}
        # the callers' own accounts stay out of reach (disabled or deleted, they would end the fuzz's depth);
        # a user of their enterprise is there to be fuzzed instead
        ids += [("user", make_user(root, ent_a, "vl-fuzz-other", "ORGUSER"))]
        ids += [("group", g) for g in root.list(f"enterprises/{ent_a}/groups") if g["name"] == "vl-fuzz-other-group"]
        keys = {"root": (vsd.user, root.api_key, vsd.enterprise)}
        for who in users:
            with VsdClient(vsd.api, f"vl-fuzz-{who}", f"vl-fuzz-{who}-pw", "vl-fuzz-a") as c:
                keys[who] = (f"vl-fuzz-{who}", c.api_key, "vl-fuzz-a")
    finally:
        root.close()
    world = World(vsd, keys, home=ent_a)
    for kind, obj in ids:
        world.add(kind, obj["ID"])
    return world


# --- values

_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_FLAWED = ["", " ", "x" * 256, "y" * 4097, "a\x00b", "line\n", "\u2028", "\u00b2", "\u0663", "-1", "0", "65536",
           "1-2\n", "80\n", "0x0800\n", "02:ab:ab:ab:ab:01\n", "10.0.0.300", "255.0.255.0", "%", "%%%%a%b",
           "ANY", "6", "17", "*", "1-65535", "0x86DD", "02:00:00:00:00:01", "02:AB:cd:00:00:09", "10.10.0.5",
           "10.30.0.0", "255.255.255.0", "FORWARD", "POLICYGROUP", "SUBNET", "ENTERPRISE_NETWORK", "VM"]
_INTS = st.one_of(st.integers(-5, 70_000), st.sampled_from([2 ** 31, 2 ** 63 - 1, 2 ** 63, 2 ** 64, -(2 ** 63) - 1,
                                                            10 ** 30, 16_777_215, 16_777_216, 4095, 4096]))
_SCALAR = st.one_of(st.none(), st.booleans(), _INTS, st.floats(allow_nan=False, allow_infinity=False), _TEXT,
                    st.sampled_from(_FLAWED))
_JSON = st.recursive(_SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(_TEXT, inner, max_size=4)), max_leaves=12)


def _among(items):
    """One of what `items()` answers at the time of drawing, picked by an index drawn from a fixed range.
    The world grows as the fuzz creates objects, and hypothesis wants the same draws to replay the same
    way: a `sampled_from` over a growing list would not, and neither may anything drawn later depend on
    which item this was (so kinds are drawn from fixed lists, and only IDs from the world)."""
    return st.integers(0, 1 << 16).map(lambda i: (lambda seq: seq[i % len(seq)])(items()))


def _once_in(n: int):
    # hypothesis leans towards the ends of a range (0 and n-1), so a rare branch takes a value inside it
    return st.integers(0, n - 1).map(lambda v: v == n // 2)


def _deep(depth: int) -> list:
    v: list = []
    for _ in range(depth):
        v = [v]
    return v


def _value(world: World, entity: str, attr: str):
    spec = SPEC[entity]["attributes"].get(attr, {"type": "str"})
    typed = {"str": _TEXT, "int": _INTS, "bool": st.booleans(), "float": st.floats(allow_nan=False),
             "list": st.lists(st.one_of(st.sampled_from(spec.get("choices") or ["A"]), _SCALAR), max_size=4),
             "dict": st.dictionaries(_TEXT, _SCALAR, max_size=3)}.get(spec["type"], _JSON)
    options = [typed, st.sampled_from(_FLAWED), _SCALAR]
    if spec.get("choices"):
        options.append(st.sampled_from(spec["choices"]))
    if attr.endswith("ID") or attr.endswith("IDs"):
        options.append(_among(lambda: world.ids))
    return st.one_of(*options, st.just(_deep(20)), st.just([world.ids[0]]))


def _some(world: World, kind: str, draw) -> str:
    return draw(_among(lambda: world.by_kind.get(kind) or [str(uuid.uuid4())]))


def _valid(world: World, entity: str, draw) -> dict:
    """A body the VSD would accept as it stands (unless a name or an address is already taken)."""
    name = draw(st.text(string.ascii_lowercase, min_size=1, max_size=6))
    n = draw(st.integers(0, 255))
    entry = {"action": "FORWARD", "locationType": "ANY", "networkType": "ANY", "protocol": "6",
             "destinationPort": str(draw(st.integers(0, 65535)))}
    return {
        "enterprise": {"name": f"vl-{name}"}, "domaintemplate": {"name": name}, "zone": {"name": name},
        "domain": {"name": name, "templateID": _some(world, "domaintemplate", draw)},
        "subnet": {"name": name, "address": f"10.{100 + n % 100}.{n}.0", "netmask": "255.255.255.0"},
        "vport": {"name": name, "type": "VM"}, "policygroup": {"name": name, "type": "SOFTWARE"},
        "ingressacltemplate": {"name": name}, "egressacltemplate": {"name": name},
        "ingressaclentrytemplate": entry, "egressaclentrytemplate": entry,
        "enterprisenetwork": {"name": name, "address": f"172.16.{n}.0", "netmask": "255.255.255.0"},
        "networkmacrogroup": {"name": name}, "group": {"name": name, "role": "ORGUSER"},
        # a password costs the VSD a 0.2 s hash: most user bodies go without (and are refused before it)
        "user": {"userName": name, "firstName": "f", "lastName": "l", "email": "e",
                 **({"password": "pw"} if draw(_once_in(4)) else {})},
        "vminterface": {"MAC": f"02:00:00:{n:02x}:{n:02x}:{draw(st.integers(0, 255)):02x}",
                        "VPortID": _some(world, "vport", draw)},
        "vm": {"name": name, "UUID": str(uuid.uuid4())},
    }.get(entity, {})


@st.composite
def entity_body(draw, world: World, entity: str):
    """Mostly a valid body with a few attributes changed or added; sometimes attributes at random."""
    attrs = list(SPEC[entity]["attributes"])
    body = {} if draw(_once_in(4)) else _valid(world, entity, draw)
    changed = draw(st.sampled_from([0, 0, 1, 1, 2, 3])) if body else draw(st.integers(1, 7))
    for a in draw(st.lists(st.sampled_from(attrs), min_size=changed, max_size=changed, unique=True)):
        body[a] = draw(_value(world, entity, a))
    if entity == "vm" and not draw(_once_in(4)):
        body["interfaces"] = draw(st.lists(entity_body(world, "vminterface"), min_size=1, max_size=2))
    if draw(_once_in(20)):
        body[draw(_TEXT)] = draw(_SCALAR)  # an attribute nobody has
    return body


# --- requests

_RESOURCES = [RESOURCE[e] for e in ENTITIES]
_FILTERS = st.one_of(
    st.builds(lambda a, op, v: f"{a} {op} {v}", st.sampled_from(["name", "ID", "vnId", "active", "tags", "a b"]),
              st.sampled_from(["==", "!=", "<", ">=", "LIKE", "IN", "like", "===", ""]),
              st.sampled_from(['"web"', "'%a%b%'", '"' + "%a" * 30 + '"', "5", "null", '("a", 1)', "(", '"'])),
    st.builds(lambda n: "(" * n + 'name == "x"' + ")" * n, st.integers(0, 60)),
    st.builds(lambda n, j: f" {j} ".join(['name == "x"'] * n), st.integers(1, 300), st.sampled_from(["and", "or"])),
    _TEXT)
# not UTF-8, yet legal in an HTTP header (obs-text): what an HTTP client can actually send
_JUNK_BYTES = st.sampled_from([b"\xff\xfe", b"name == \"\xc3\"", b"\x80", b"XREST \xff", "é".encode("latin-1")])
_NOT_IN_HEADERS = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


# who may be created under what (by relation name), from the API's description
_CREATE = {(owner, rel): info["entity"] for owner in ENTITIES for rel, info in SPEC[owner]["relations"].items()
           if owner in PARENTS.get(info["entity"], ())}
_MEMBERS = {owner: RESOURCE[member] for owner, member in MEMBERS.items()}


@st.composite
def _existing(draw, world: World, kinds) -> tuple[str, str]:
    kind = draw(st.sampled_from(list(kinds)))
    return kind, draw(_among(lambda: world.by_kind.get(kind) or [str(uuid.uuid4())]))


@st.composite
def _create(draw, world: World) -> tuple[str, str, object, str]:
    if draw(_once_in(6)):  # at the API root
        kind = draw(st.sampled_from(["enterprise", "vm"]))
        path = RESOURCE[kind]
    else:
        (owner, rel) = draw(st.sampled_from(list(_CREATE)))
        kind = _CREATE[(owner, rel)]
        path = f"{RESOURCE[owner]}/{draw(_among(lambda: world.by_kind.get(owner) or [str(uuid.uuid4())]))}/{rel}"
    one = entity_body(world, kind)
    return "POST", path, draw(st.one_of(one, one, one, st.lists(one, min_size=1, max_size=3))), kind


@st.composite
def _update(draw, world: World) -> tuple[str, str, object, str]:
    kind, oid = draw(_existing(world, ENTITIES))
    body = draw(entity_body(world, kind))
    if draw(st.booleans()):  # an update names only what changes
        body = {k: v for k, v in body.items() if draw(_once_in(3))}
    return "PUT", f"{RESOURCE[kind]}/{oid}", body, kind


@st.composite
def _assign(draw, world: World) -> tuple[str, str, object, str]:
    owner, oid = draw(_existing(world, list(MEMBERS)))
    member = MEMBERS[owner]
    ids = _among(lambda: world.by_kind.get(member) or world.ids)
    body = draw(st.one_of(st.lists(ids, max_size=4), st.lists(_among(lambda: world.ids), max_size=3), _JSON))
    return "PUT", f"{RESOURCE[owner]}/{oid}/{_MEMBERS[owner]}", body, member


@st.composite
def _read(draw, world: World) -> tuple[str, str, object, str]:
    kind, oid = draw(_existing(world, ENTITIES))
    children = list(SPEC[kind]["relations"]) or _RESOURCES
    path = draw(st.sampled_from([RESOURCE[kind], f"{RESOURCE[kind]}/{oid}",
                                 f"{RESOURCE[kind]}/{oid}/{draw(st.sampled_from(children))}"]))
    return draw(st.sampled_from(["GET", "GET", "HEAD"])), path, None, kind


@st.composite
def _delete(draw, world: World) -> tuple[str, str, object, str]:
    kind, oid = draw(_existing(world, ENTITIES))
    return "DELETE", f"{RESOURCE[kind]}/{oid}", None, kind


@st.composite
def _anything(draw, world: World) -> tuple[str, str, object, str]:
    """Any method on any path shape, with any body: the requests no client means to send."""
    entity = draw(st.sampled_from(ENTITIES))
    oid = draw(st.one_of(_among(lambda: world.by_kind.get(entity) or world.ids), _among(lambda: world.ids),
                         st.just(str(uuid.uuid4())), _TEXT.map(lambda t: quote(t, safe=""))))
    shape = draw(st.sampled_from(["list", "one", "child", "fixed", "junk"]))
    if shape == "list":
        path = draw(st.sampled_from(_RESOURCES))
    elif shape == "one":
        path = f"{RESOURCE[entity]}/{oid}"
    elif shape == "child":
        path = f"{RESOURCE[entity]}/{oid}/{draw(st.sampled_from(_RESOURCES))}"
    elif shape == "fixed":
        path = draw(st.sampled_from(["me", "events", "vsplab/health", "vsplab/audit", "vsplab/changes", "vsplab/x",
                                     ""]))
    else:
        path = "/".join(quote(p, safe="%") for p in draw(st.lists(st.text(string.printable, max_size=8), max_size=5)))
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"]))
    query = draw(st.one_of(st.just(""), st.builds(lambda k, v: f"?{k}={v}",
                                                  st.sampled_from(["limit", "since", "uuid", "x"]),
                                                  st.sampled_from(["x", "5", "-1", str(2 ** 64), "%ff", "1e3", ""]))))
    # a well-formed GET of the change stream never ends, and of /events?uuid= waits 25 s: those paths get
    # their other methods and malformed parameters only
    if method == "GET" and path == "vsplab/changes":
        query = draw(st.sampled_from(["?since=x", "?since=-1", "?since=%ff", f"?since={2 ** 64}", "?since=1e3"]))
    elif method == "GET" and path == "events" and "uuid" in query:
        query = ""
    kind = next((e for e in ENTITIES if RESOURCE[e] == path.rsplit("/", 1)[-1]), entity)
    body = None
    if method in ("POST", "PUT"):
        body = draw(st.one_of(entity_body(world, kind), st.lists(_among(lambda: world.ids), max_size=3), _JSON,
                              st.just(b"{not json"), st.just(b"\xff"), st.just(b"")))
    return method, path + query, body, kind


@st.composite
def request(draw, world: World) -> dict:
    """Mostly what clients mean to do (create, update, assign members, read, delete) with flaws mixed in,
    and now and then anything at all."""
    what = draw(st.sampled_from([_create] * 4 + [_update] * 2 + [_read] * 2 + [_assign, _delete, _anything,
                                                                                  _anything]))
    method, path, body, kind = draw(what(world))
    who = draw(st.sampled_from(["root"] * 4 + ["admin"] * 3 + ["reader", "nobody", "stale"]))
    headers: dict[str, str | bytes] = {}
    if method in ("GET", "HEAD") and draw(_once_in(2)):
        headers["X-Nuage-Filter"] = draw(st.one_of(_FILTERS, _JUNK_BYTES))
    if method in ("GET", "HEAD") and draw(_once_in(4)):
        headers[draw(st.sampled_from(["X-Nuage-Page", "X-Nuage-PageSize"]))] = draw(
            st.sampled_from(["0", "1", "-1", "x", str(2 ** 64), "99999999999", "2.5", "3", ""]))
    if draw(_once_in(15)):
        headers[draw(st.sampled_from(["Authorization", "X-Nuage-Organization"]))] = draw(
            st.one_of(_JUNK_BYTES, _TEXT, st.just("XREST " + base64.b64encode(b"\xff:\xfe").decode())))
    return {"who": who, "method": method, "path": path, "headers": headers, "body": body, "kind": kind}


def send(world: World, client: httpx.Client, req: dict) -> httpx.Response:
    who = req["who"]
    if who in world.keys:
        user, key, org = world.keys[who]
    else:  # a stranger, or a key that never existed
        user, key, org = ("csproot", "0" * 32, "csp") if who == "stale" else ("nobody", "nothing", "vl-fuzz-a")
    token = base64.b64encode(f"{user}:{key}".encode()).decode()
    headers: dict[str, str | bytes] = {"Authorization": f"XREST {token}", "X-Nuage-Organization": org,
                                       "Content-Type": "application/json"}
    for name, value in req["headers"].items():  # as UTF-8 (or the junk bytes), minus what HTTP forbids
        headers[name] = _NOT_IN_HEADERS.sub(b"", value if isinstance(value, bytes) else value.encode()).strip(b" \t")
    body = req["body"]
    # the stdlib writes integers of any size (orjson stops at 64 bits); the VSD must cope with them
    content = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else None
    r = client.request(req["method"], f"{world.vsd.api}/{req['path']}", headers=headers, content=content)
    world.sent += 1
    world.statuses[r.status_code] = world.statuses.get(r.status_code, 0) + 1
    if r.status_code == 200 and req["method"] == "PUT" and req["path"].startswith("me"):  # a new password
        world.keys[who] = (user, r.json()[0]["APIKey"], org)
        world.passwords[who] = req["body"]["password"]
    if r.status_code == 200 and req["method"] == "PUT" and req["path"] == f"enterprises/{world.home}":
        name = r.json()[0]["name"]  # a renamed enterprise is the organization its users log in to
        world.keys.update({k: (u, key, name) for k, (u, key, o) in world.keys.items() if k != "root"})
    if r.status_code == 201:  # what the fuzz made is something to fuzz further
        answer = r.json()
        for obj in answer if isinstance(answer, list) else [item["data"] for item in answer["response"]]:
            world.add(req["kind"], obj["ID"])
    return r
