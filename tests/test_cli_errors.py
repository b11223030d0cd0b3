"""The CLI's last line of defence: a node that goes away under a command is a user-facing
stop with a clear message and exit code 1, never a traceback (`make faults-long` found one:
a `citypass node stop` during an issuance surfaced the endpoint's -32603 as a traceback)."""

from __future__ import annotations

from click.testing import CliRunner
from web3.exceptions import Web3RPCError

import importlib

cli = importlib.import_module("citypass.cli.main")  # the module (citypass.cli.main is also the group's name)


def _raise(exc):
    def f(*_args, **_kwargs):
        raise exc
    return f


def test_the_embedded_node_stopping_under_a_command_is_a_clear_error(monkeypatch, tmp_path):
    gone = Web3RPCError(str({"code": -32603, "message": "CityPass endpoint: BrokenPipeError: [Errno 32] Broken pipe"}))
    monkeypatch.setattr(cli.node, "node_status", _raise(gone))
    result = CliRunner().invoke(cli.main, ["--workdir", str(tmp_path), "node", "status"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert "the embedded node stopped while this command ran (CityPass endpoint: BrokenPipeError" in result.output
    assert "run the same command" in result.output


def test_another_rpc_error_is_not_hidden(monkeypatch, tmp_path):
    """Only the supervisor's own 'node went away' answer is turned into a message: any other
    RPC error is a bug and keeps its traceback."""
    other = Web3RPCError(str({"code": -32000, "message": "execution reverted"}))
    monkeypatch.setattr(cli.node, "node_status", _raise(other))
    result = CliRunner().invoke(cli.main, ["--workdir", str(tmp_path), "node", "status"])
    assert isinstance(result.exception, Web3RPCError)
