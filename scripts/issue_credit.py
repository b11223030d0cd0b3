"""Issue credit from a CSV file on Brownie's active network, through the citypass package.

    brownie run scripts/issue_credit.py main FILE BUDGET --network citypass
    brownie run scripts/issue_credit.py dry_run FILE BUDGET --network citypass

Exactly the `citypass issue FILE --budget BUDGET` command (validation, exactly-once batches,
progress, reconciliation), pointed at Brownie's node (`--network citypass`: the embedded chain through its
supervisor, after `citypass node brownie`; see scripts/deploy.py). The contract comes from the address
book in $CITYPASS_HOME (default .citypass, written by scripts/deploy.py) or
$CITYPASS_CONTRACT; the signer from $CITYPASS_FROM (on a local dev chain: the dev account
holding the ISSUER and REGISTRAR roles).
"""

from brownie import web3

from citypass.cli import run_cli


def main(file: str, budget: str) -> None:
    run_cli(web3.provider.endpoint_uri, ["issue", file, "--budget", budget])


def dry_run(file: str, budget: str) -> None:
    run_cli(web3.provider.endpoint_uri, ["issue", file, "--budget", budget, "--dry-run"])
