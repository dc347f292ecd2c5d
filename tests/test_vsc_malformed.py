"""The VSC process (os-ken) against a switch that sends messages it cannot parse: one short, rate-limited
log line instead of a traceback per message, and the VSC keeps serving that switch and the others."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

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


# Messages os-ken's own parsers loop forever on (a length of 0 where a list element should be).
_HANGS_OSKEN = textwrap.dedent('''
    import struct, sys
    import vsc.app  # noqa: F401  installs the screen in front of os-ken's parsers
    from os_ken.ofproto import ofproto_parser, ofproto_protocol, ofproto_v1_3 as ofp
    from openflow import encode, switchmsg
    from openflow.flow import Flow, Output, match

    def frame(t, body):
        return bytearray(struct.pack("!BBHI", 4, t, 8 + len(body), 1) + body)

    fm = encode.flow_mod(Flow(0, 1, match(reg0=1), actions=(Output(1),)))
    entry = bytearray(switchmsg.flow_stats_entry(Flow(0, 1, match(reg0=1), actions=(Output(1),))))
    entry[64:68] = b"\\x00\\x04\\x00\\x00"  # its instruction: apply-actions of length 0
    msgs = {
        "hello element of length 0": frame(0, b"\\x00\\x01\\x00\\x00" + bytes(4)),
        "flow-mod with an instruction of length 0": bytearray(fm[:64] + b"\\x00\\x04\\x00\\x00" + fm[68:]),
        "flow stats entry with an instruction of length 0": bytearray(switchmsg.flow_stats_replies(9, [bytes(entry)])[0]),
        "queue property of length 0": frame(23, struct.pack("!I4xIIH6x", 1, 1, 1, 32) + bytes(16)),
    }
    dp = ofproto_protocol.ProtocolDesc(ofp.OFP_VERSION)
    for what, m in msgs.items():
        r = ofproto_parser.msg(dp, 4, m[1], len(m), 1, m)
        print(what, type(r).__name__, flush=True)
    print("all parsed")
''')


def test_osken_never_parses_a_message_it_would_loop_on():
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    try:
        out = subprocess.run([sys.executable, "-c", _HANGS_OSKEN], capture_output=True, text=True, timeout=30,
                             env=env)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"os-ken is still parsing after 30 s; got through: {e.stdout}") from None
    assert out.returncode == 0 and "all parsed" in out.stdout, out.stdout + out.stderr
    # The flow stats reply still reaches the VSC's handler (which decodes the entries itself).
    assert "flow stats entry with an instruction of length 0 OFPFlowStatsReply" in out.stdout, out.stdout
