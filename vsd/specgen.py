"""Regenerates `vsd/spec.json` from vspk's v6 model classes (vspk is a test dependency, the server is not
tied to it): for each entity the VSD serves, every attribute's JSON name, type, choices and whether it is
required, plus the child/member relations vspk's fetchers walk. Run `python -m vsd.specgen`."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

ENTITIES = ("me", "enterprise", "domaintemplate", "domain", "zone", "subnet", "vport", "vm", "vminterface",
            "policygroup", "ingressacltemplate", "ingressaclentrytemplate", "egressacltemplate",
            "egressaclentrytemplate", "enterprisenetwork", "networkmacrogroup", "user", "group", "job")
SPEC_PATH = Path(__file__).with_name("spec.json")


def build() -> dict:
    import vspk.v6 as v6

    classes = {c.rest_name: c for name, c in inspect.getmembers(v6, inspect.isclass)
               if name.startswith("NU") and not name.endswith("Fetcher") and getattr(c, "__rest_name__", None)}
    spec = {}
    for rest_name in ENTITIES:
        cls = classes[rest_name]
        obj = cls()
        attrs = {}
        for a in obj._attributes.values():
            attrs[a.remote_name] = {"type": a.attribute_type.__name__, "required": bool(a.is_required),
                                    **({"choices": list(a.choices)} if a.choices else {})}
        relations = {}
        for f in obj.fetchers:
            child = f.__class__.managed_class()
            if child.rest_name in ENTITIES:
                relations[child.resource_name] = {"entity": child.rest_name, "relationship": f.relationship}
        spec[rest_name] = {"resource": cls.resource_name, "attributes": attrs, "relations": relations}
    return spec


def main() -> None:
    SPEC_PATH.write_text(json.dumps(build(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {SPEC_PATH}")


if __name__ == "__main__":
    main()
