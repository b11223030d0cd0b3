"""`make lint`: Slither's detectors on our contracts, and slither-check-erc's ERC-1155
conformance check of CityPass.

Run by the Python of Slither's own virtualenv (`.venv-slither`, see the Makefile) from the
project root, with the project's `brownie` on PATH. Fails on:
  - any high or medium finding in contracts/ (test doubles in contracts/test/ excluded);
  - a `slither-disable` comment in contracts/ that no longer suppresses anything;
  - an ERC-1155 deviation that is not in EXPECTED_ERC1155_DEVIATIONS, or a listed one
    that is gone (so the list stays the truth).
Low and informational findings are printed as counts per detector (`--verbose`: in full).

Slither reads Brownie's build/contracts but needs every source's artifact from one compile
run: any later Brownie command prunes the artifacts of libraries that only other libraries
import (Math, SafeCast, ...), and it crashes on those. So lint analyses a copy of a complete
build in build/slither/, made right after `brownie compile --all` (whose build the tests
then reuse) and kept while contracts, compiler settings and npm packages are unchanged.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "slither"  # a Brownie-shaped project folder: links + a build copy
SNAPSHOT = WORK / "build" / "contracts"
KEY_FILE = WORK / "sources.sha256"
LINKED = ("contracts", "node_modules", "brownie-config.yaml")
KEY_INPUTS = ("brownie-config.yaml", "package-lock.json", "toolchain/solc-adapter.js")
BIN = Path(sys.executable).parent
COMMON = ["--compile-force-framework", "brownie", "--brownie-ignore-compile"]

# Findings are reported for our contracts only. node_modules/ is OpenZeppelin: audited, not
# ours to change, and its findings are known false positives (e.g. incorrect-exp on the
# deliberate XOR in Math.mulDiv). contracts/test/ holds test doubles that are never deployed.
# --include-paths, not --filter-paths: the latter drops a finding if any one of its elements
# is in a filtered file, which would hide e.g. a reentrancy of ours through ERC1155Utils.
OUR_CONTRACTS = r"^(?!.*/node_modules/).*/contracts/(?!test/)"
FAILING_IMPACTS = ("High", "Medium")

# What slither-check-erc reports for CityPass, each a deliberate choice (README, "Static
# analysis"). The keys are the tool's own words; the values say why.
EXPECTED_ERC1155_DEVIATIONS = {
    "missing_event_emmited in setApprovalForAll: Must emit be view ApprovalForAll(address,address,bool)":
        "operator approvals are disabled: setApprovalForAll always reverts (ApprovalsDisabled), "
        "so no approval is ever granted or announced; no third party may move a resident's credit",
    "missing_function in CityPass: onERC1155Received(address,address,uint256,uint256,bytes) is missing (optional)":
        "optional receiver hook: CityPass never takes ERC-1155 tokens itself",
    "missing_function in CityPass: onERC1155BatchReceived(address,address,uint256[],uint256[],bytes) is missing (optional)":
        "optional receiver hook: CityPass never takes ERC-1155 tokens itself",
}


def sources_key() -> str:
    """Hash of everything a compile depends on: while it holds, the snapshot is current."""
    digest = hashlib.sha256()
    files = [ROOT / name for name in KEY_INPUTS] + sorted((ROOT / "contracts").rglob("*.sol"))
    for path in files:
        digest.update(f"{path.relative_to(ROOT)}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()


def missing_artifacts(folder: Path) -> list[str]:
    """Sources that some artifact's AST refers to but that have no artifact themselves."""
    have, need = set(), set()
    for path in folder.glob("*.json"):
        artifact = json.loads(path.read_text())
        have.add(artifact["sourcePath"])
        need.update(artifact["allSourcePaths"].values())
    return sorted(need - have)


def prepare_build() -> None:
    key = sources_key()
    if KEY_FILE.exists() and KEY_FILE.read_text() == key and not missing_artifacts(SNAPSHOT):
        return
    print("lint: brownie compile --all (Slither needs a build from one compile run)", flush=True)
    compiled = subprocess.run(["brownie", "compile", "--all"], cwd=ROOT, capture_output=True, text=True)
    if compiled.returncode != 0:
        sys.exit(f"lint: `brownie compile --all` failed:\n{compiled.stdout}{compiled.stderr}")
    shutil.rmtree(WORK, ignore_errors=True)
    shutil.copytree(ROOT / "build" / "contracts", SNAPSHOT)
    for name in LINKED:
        (WORK / name).symlink_to(Path("..", "..", name))
    missing = missing_artifacts(SNAPSHOT)
    if missing:
        sys.exit(f"lint: build/contracts has no artifact for {', '.join(missing)} after `brownie compile --all`")
    KEY_FILE.write_text(key)


def start(tool: str, *args: str, report: Path) -> subprocess.Popen:
    report.unlink(missing_ok=True)
    command = [str(BIN / tool), ".", *args, *COMMON, "--json", str(report)]
    return subprocess.Popen(command, cwd=WORK, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def load_report(process: subprocess.Popen, report: Path, tool: str) -> dict:
    """The tool's JSON results; exits with the tool's own output if it did not finish."""
    output, _ = process.communicate()
    data = json.loads(report.read_text()) if report.exists() else {}
    if not data.get("success"):
        sys.exit(f"lint: {tool} failed (exit {process.returncode}):\n{output}{data.get('error') or ''}")
    data["output"], data["returncode"] = output, process.returncode
    return data


def first_line(finding: dict) -> str:
    return finding["description"].strip().splitlines()[0]


def check_slither(data: dict, verbose: bool) -> list[str]:
    # Slither also sums up unused suppressions as one finding with no location, counting
    # OpenZeppelin's; ours are picked from its per-comment warnings below.
    findings = [f for f in data["results"].get("detectors", []) if f["check"] != "unused-ignore-directive"]
    by_detector = collections.Counter((f["impact"], f["check"]) for f in findings)
    problems = [f"{f['impact']} {f['check']}: {f['description'].strip()}" for f in findings
                if f["impact"] in FAILING_IMPACTS]
    # A suppression in our code that suppresses nothing is stale: the code moved on.
    stale = {line.split("Slither:", 1)[-1].replace(f"{WORK}/", "") for line in data["output"].splitlines()
             if "Unused slither-disable" in line and "/node_modules/" not in line}
    problems += sorted(stale)
    if data["returncode"] != 0 and not problems:  # --fail-medium's verdict, should the JSON miss it
        problems.append(f"slither exited {data['returncode']} (--fail-medium)")
    failing = sum(n for (impact, _), n in by_detector.items() if impact in FAILING_IMPACTS)
    accepted = ", ".join(f"{check} {n}" for (impact, check), n in sorted(by_detector.items(), key=lambda kv: kv[0][1])
                         if impact not in FAILING_IMPACTS)
    print(f"slither: {failing} high/medium; low/informational (triaged in README): {accepted or 'none'}")
    if verbose:
        for finding in findings:
            print(f"  [{finding['impact']} {finding['check']}] {first_line(finding)}")
    return problems


def erc_deviations(data: dict) -> set[str]:
    found = set()
    for kind, items in data["results"].get("erc-conformance", {}).items():
        for item in items:
            where = ",".join(element["name"] for element in item["elements"])
            found.add(f"{kind} in {where}: {item['description'].strip().removeprefix('[ ] ')}")
    return found


def check_erc(data: dict) -> list[str]:
    found = erc_deviations(data)
    new = sorted(found - EXPECTED_ERC1155_DEVIATIONS.keys())
    gone = sorted(EXPECTED_ERC1155_DEVIATIONS.keys() - found)
    print(f"slither-check-erc ERC1155 CityPass: {len(found & EXPECTED_ERC1155_DEVIATIONS.keys())} "
          f"deliberate deviations, {len(new)} new")
    return ([f"new ERC-1155 deviation: {d}" for d in new]
            + [f"listed ERC-1155 deviation no longer reported (update toolchain/lint.py): {d}" for d in gone])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="print every finding, not only counts")
    args = parser.parse_args()
    prepare_build()
    detectors_report, erc_report = WORK / "slither.json", WORK / "check-erc.json"
    # The two tools parse the same build independently: run them side by side.
    detectors = start("slither", "--include-paths", OUR_CONTRACTS, "--warn-unused-ignores", "--fail-medium",
                      report=detectors_report)
    erc = start("slither-check-erc", "CityPass", "--erc", "ERC1155", report=erc_report)
    problems = check_slither(load_report(detectors, detectors_report, "slither"), args.verbose)
    problems += check_erc(load_report(erc, erc_report, "slither-check-erc"))
    for problem in problems:
        print(f"lint: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
