"""Deploy CityPass on Brownie's active network, through the citypass package.

    citypass node brownie                                # once: the embedded chain as network `citypass`
    brownie run scripts/deploy.py --network citypass
    brownie run scripts/deploy.py main ADMIN BUDGET_MGR PROVIDER_MGR REGISTRAR ISSUER TREASURER PAUSER --network X

`--network citypass` goes through the embedded chain's supervisor, which journals each
transaction (a crash after the script's success loses nothing); `--network anvil` is
Brownie's own throwaway Anvil.

On a local dev chain the roles default to separate Anvil dev accounts (dev:0..dev:6) and
dev:0 deploys; elsewhere give all seven role addresses and set CITYPASS_FROM to the
deployer's keystore. The address is recorded in the address book ($CITYPASS_HOME or .citypass).
"""

import os

from brownie import web3

from citypass import chain as citypass_chain
from citypass import contract, keys


def main(*role_addresses: str) -> str:
    chain = citypass_chain.connect(web3.provider.endpoint_uri, workdir=os.environ.get("CITYPASS_HOME", ".citypass"))
    if role_addresses:
        roles = dict(zip(contract.ROLE_PARAMS, role_addresses, strict=True))
    else:
        roles = contract.dev_roles() if chain.is_local_dev else {}
    if len(roles) != len(contract.ROLE_PARAMS):
        raise SystemExit(f"give the seven role addresses: {' '.join(r.upper() for r in contract.ROLE_PARAMS)}")
    deployer = keys.load_account(os.environ.get("CITYPASS_FROM", "dev:0"), chain)
    dep = contract.deploy(chain, deployer, **roles)
    print(f"CityPass deployed at {dep.address} on chain {chain.chain_id} (block {dep.block})")
    return dep.address
