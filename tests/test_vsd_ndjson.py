"""The change stream's line splitting in `vsd.client`: lines cut anywhere by the network, and names
holding Unicode line breaks that JSON leaves unescaped."""

import orjson

from vsd.client import ndjson


def _cut(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def test_lines_survive_any_chunking_and_unicode_line_breaks():
    docs = [{"kind": "snapshot", "revision": 3, "objects": [{"name": "web\u2028tier\x85"}] * 50},
            {"kind": "heartbeat", "revision": 3}, {"kind": "event", "revision": 4, "entity": {"name": "a\u2029b"}}]
    data = b"".join(orjson.dumps(d) + b"\n" for d in docs) + b"\n"  # and a blank line, which is skipped
    for size in (1, 7, 64, len(data)):
        assert list(ndjson(_cut(data, size))) == docs


def test_a_line_cut_off_by_the_connection_is_dropped():
    data = orjson.dumps({"kind": "heartbeat", "revision": 1}) + b"\n" + b'{"kind": "ev'
    assert list(ndjson(_cut(data, 5))) == [{"kind": "heartbeat", "revision": 1}]


def test_names_with_unicode_line_breaks_cross_a_real_vsd_stream():
    from vsd.client import VsdClient
    from vsd.server import EmbeddedVsd

    name = "vl-web\u2028tier\x85\u2029end"
    with EmbeddedVsd() as vsd, VsdClient(vsd.api, vsd.user, vsd.password, vsd.enterprise) as c:
        c.create("", "enterprises", {"name": "vl-first"})  # so that the event can be resumed from revision 1
        ent = c.create("", "enterprises", {"name": name})
        stream = c.changes(0)
        snapshot = next(stream)
        stream.close()
        assert [o["entity"]["name"] for o in snapshot["objects"]] == ["vl-first", name]
        stream = c.changes(snapshot["revision"] - 1)
        event = next(stream)
        stream.close()
        assert event["entity"]["ID"] == ent["ID"] and event["entity"]["name"] == name
