"""`vsd serve`, `vsc run` and `vrs run` read one YAML config file (`--config`, daemonconf): every key is
one of the subcommand's long options, flags win over the file, a bad file ends the daemon with exit
status 2 and a message naming the file, the key and its line; under the journal, log lines carry their
priority and no timestamp."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from daemonconf import journal_logging, parse_with_config
from vrs.cli import parser as vrs_parser
from vsc.cli import _parser as vsc_parser

ROOT = Path(__file__).resolve().parent.parent


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "daemon.yaml"
    path.write_text(text)
    return str(path)


def test_vsc_options_from_the_file_and_flags_win(tmp_path):
    conf = _write(tmp_path, "vsd: [http://10.0.0.10:8443, http://10.0.0.11:8443]\nof-port: 7000\n"
                            "bgp_peer: 10.0.0.1:65000\nrequire_enrolment: true\nbgp_asn: 65001\n")
    args = parse_with_config(vsc_parser(), ["run", "--config", conf, "--of-port", "7001"])
    # a list for a one-value option is the flag's comma-joined form (several VSDs: `--vsd A,B`)
    assert args.vsd == "http://10.0.0.10:8443,http://10.0.0.11:8443"
    assert (args.of_port, args.bgp_peer, args.require_enrolment, args.bgp_asn) == (7001, ["10.0.0.1:65000"], True,
                                                                                  65001)
    assert args.agent_port == 6634  # what the file does not name keeps its default


def test_vrs_options_from_the_file(tmp_path):
    conf = _write(tmp_path, "vsc: 10.0.0.21\nvtep_ip: 10.0.0.31\ndatapath_id: 0x1f\ndatapath_type: system\n"
                            "extra_controller: [tcp:10.0.0.22:6653]\n")
    args = parse_with_config(vrs_parser(), ["run", "--config", conf])
    assert (args.vsc, args.datapath_id, args.datapath_type, args.extra_controller) == (
        "10.0.0.21", 31, "system", ["tcp:10.0.0.22:6653"])


@pytest.mark.parametrize("text, message", [
    ("of_port: 1\nof_prot: 2\n", "line 2: unknown key 'of_prot'"),
    ("of_port: seven\n", "line 1: of_port: 'seven' is not a valid int"),
    ("of_port: 1\nof-port: 2\n", "line 2: of-port given twice (first on line 1)"),
    ("require_enrolment: yes please\n", "line 1: require_enrolment: expected true or false"),
    ("- of_port\n", "line 1: expected a mapping of options"),
    ("of_port: [1\n", "not YAML"),
    ("listen: {a: 1}\n", "line 1: listen: expected a single value"),
])
def test_a_bad_config_names_file_key_and_line(tmp_path, capsys, text, message):
    conf = _write(tmp_path, text)
    with pytest.raises(SystemExit) as e:
        parse_with_config(vsc_parser(), ["run", "--config", conf])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vsc run: {conf}") and message in err, err


@pytest.mark.parametrize("command", [["vsd", "serve"], ["vsc", "run"], ["vrs", "run"]])
def test_each_daemon_exits_2_on_a_bad_config(tmp_path, command):
    conf = _write(tmp_path, "port: 8443\nnot_an_option: 1\n")
    bindir = Path(sys.executable).parent
    r = subprocess.run([str(bindir / command[0]), *command[1:], "--config", conf], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2, r
    assert f"{command[0]} {command[1]}: {conf} line" in r.stderr and "unknown key" in r.stderr, r.stderr
    missing = subprocess.run([str(bindir / command[0]), *command[1:], "--config", str(tmp_path / "none.yaml")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "cannot read it" in missing.stderr


def test_journal_lines_carry_their_priority(tmp_path):
    """With stderr the journal's stream (JOURNAL_STREAM names its device and inode), each line starts
    with its syslog priority and no timestamp; elsewhere it keeps the timestamp."""
    err = tmp_path / "stderr"
    code = ("import logging, os, sys; from daemonconf import journal_logging; "
            "st = os.fstat(2); os.environ['JOURNAL_STREAM'] = f'{st.st_dev}:{st.st_ino}' if sys.argv[1] == 'j' else ''; "
            "journal_logging('INFO'); logging.getLogger('vsc').warning('two\\nlines'); "
            "logging.getLogger('vsc').debug('hidden')")
    with open(err, "w") as f:
        subprocess.run([sys.executable, "-c", code, "j"], stderr=f, check=True, cwd=ROOT, timeout=30)
    assert err.read_text() == "<4>vsc: two\n<4>lines\n"
    with open(err, "w") as f:
        subprocess.run([sys.executable, "-c", code, "-"], stderr=f, check=True, cwd=ROOT, timeout=30)
    assert " vsc WARNING two" in err.read_text() and not err.read_text().startswith("<")


def test_journal_logging_to_a_file(tmp_path):
    log = tmp_path / "vrs.log"
    try:
        journal_logging("DEBUG", str(log))
        logging.getLogger("vrs.test").debug("to the file")
    finally:
        logging.getLogger().handlers[:] = []
        logging.getLogger().setLevel(logging.WARNING)
    assert "vrs.test DEBUG to the file" in log.read_text()
