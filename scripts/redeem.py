"""Redeem resident vouchers as a provider on Brownie's active network, through the citypass package.

    brownie run scripts/redeem.py main PAYLOAD-or-PNG --network anvil
    brownie run scripts/redeem.py batch FILE --network anvil      # one payload per line

Exactly `citypass redeem` (pre-check with a plain reason, then the provider's own wallet
sends), pointed at Brownie's node. The provider's wallet comes from $CITYPASS_FROM (a
keystore name or file); on a local dev chain the dev account the voucher names is used.
"""

from brownie import web3

from citypass.cli import run_cli


def main(voucher: str) -> None:
    run_cli(web3.provider.endpoint_uri, ["redeem", voucher])


def batch(file: str) -> None:
    run_cli(web3.provider.endpoint_uri, ["redeem", "--batch", file])
