"""The VSC process (os-ken) against a switch that sends messages it cannot parse: one short, rate-limited
log line instead of a traceback per message, and the VSC keeps serving that switch and the others."""

from __future__ import annotations

import json

import pytest

from openflow import encode
from openflow.consts import OFPT_ECHO_REPLY
from tests.of_peers import connect_switch
from vsc.process import VscProcess
from vsplab.lab.ports import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def vsc(tmp_path):
    view = tmp_path / "view.json"
    view.write_text(json.dumps({"revision": 1, "objects": []}))
    proc = VscProcess(view_file=view, of_port=free_port(), agent_port=free_port(), status_port=free_port(),
                      state_dir=tmp_path / "state", log_file=tmp_path / "vsc.log")
    proc.of_port = int(proc.args[proc.args.index("--of-port") + 1])
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def test_unknown_message_types_log_one_line_not_a_traceback_each(vsc):
    peer = connect_switch(vsc.of_port, 0xF00D)
    try:
        for i in range(50):
            peer.send(encode.header(200 + i % 50, 1000 + i, b"\x00" * (i % 9)))
        peer.send(encode.echo_request(77, b"still-there"))
        echo, _ = peer.until(lambda m: m[1] == OFPT_ECHO_REPLY)
        assert echo is not None and echo.endswith(b"still-there")
    finally:
        peer.close()
    log = vsc.log_file.read_text()
    assert "Traceback" not in log, log[-3000:]
    lines = [x for x in log.splitlines() if "malformed" in x.lower() or "unparsable" in x.lower()]
    assert 1 <= len(lines) <= 3, lines
    # The VSC still accepts and serves another switch.
    other = connect_switch(vsc.of_port, 0xF00E)
    other.send(encode.echo_request(78))
    assert other.until(lambda m: m[1] == OFPT_ECHO_REPLY)[0] is not None
    other.close()
