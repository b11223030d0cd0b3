"""`--json` is a global option that also works after the subcommand, and with it a failure is
a JSON object a script can parse (issue 11, item 5). Synthetic data only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from citypass.cli import main
from tests.ops_helpers import cli, make_world


def invoke(workdir: Path, *args: str):
    runner = CliRunner(mix_stderr=False)
    return runner.invoke(main, ["--workdir", str(workdir), *args],
                         env={"CITYPASS_RPC": None, "CITYPASS_FROM": None, "CITYPASS_HOME": None}, catch_exceptions=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    yield from make_world(tmp_path_factory.mktemp("json"))


def test_json_after_the_subcommand(tmp_path):
    for args in (("--json", "node", "status"), ("node", "status", "--json"), ("node", "--json", "status")):
        r = invoke(tmp_path / "w", *args)
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout) == {"running": False, "workdir": str(tmp_path / "w")}, args


def test_a_usage_error_with_json_is_a_json_object(tmp_path):
    r = invoke(tmp_path, "provider", "frobnicate", "--json")
    assert r.exit_code == 2
    assert json.loads(r.stdout) == {"ok": False, "error": "No such command 'frobnicate'.", "exit_code": 2}
    assert "error: No such command 'frobnicate'." in r.stderr


def test_a_refusal_with_json_is_a_json_object(world, tmp_path):
    for args in (("--json", "budget", "show", "#9"), ("budget", "show", "#9", "--json")):
        r = cli(world, *args)
        assert r.exit_code == 1
        out = json.loads(r.stdout)
        assert set(out) == {"ok", "error", "exit_code"} and out["ok"] is False and out["exit_code"] == 1
        assert "#9" in out["error"] and f"error: {out['error']}" in r.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("holder,amount\n0x1234,1\n")
    r = cli(world, "issue", str(bad), "--budget", "1", "--json")
    out = json.loads(r.stdout)
    assert r.exit_code == 1 and out["error"].startswith(f"{bad}: 1 problem, nothing was sent:\n  line 2: holder:")


def test_a_failure_after_the_data_keeps_stdout_one_json_document(world):
    """`redeem --batch` prints its outcome list, then fails: stdout stays one JSON document."""
    from citypass.cli import common

    with CliRunner(mix_stderr=False).isolation() as (out, err):
        common.start_invocation()
        common.emit_json([{"line": 1, "redeemed": False}])
        common.failure("1 of 1 vouchers were refused", 1, as_json=True)
        assert json.loads(out.getvalue()) == [{"line": 1, "redeemed": False}]
        assert err.getvalue() == b"error: 1 of 1 vouchers were refused\n"
    r = cli(world, "budget", "show", "#9", "--json")  # a new invocation: the error object again
    assert json.loads(r.stdout)["ok"] is False


def test_without_json_a_failure_prints_no_json(world):
    r = cli(world, "budget", "show", "#9")
    assert r.exit_code == 1 and r.stdout == "" and r.stderr.startswith("error: ")


def test_a_json_value_after_a_double_dash_is_left_alone():
    from citypass.cli.common import hoist_json

    assert hoist_json(["node", "status", "--json"]) == (["--json", "node", "status"], True)
    assert hoist_json(["account", "new", "--", "--json"]) == (["account", "new", "--", "--json"], False)
    assert hoist_json(["info"]) == (["info"], False)
