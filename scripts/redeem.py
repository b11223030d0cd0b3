"""Redeem a resident's pass QR as a provider on Brownie's active network, through the citypass package.

    brownie run scripts/redeem.py main QR-or-PNG AMOUNT --network citypass   # AMOUNT in euros, e.g. 12.50
    brownie run scripts/redeem.py batch FILE --network citypass              # lines QR,AMOUNT[,CO_PAYMENT[,BUDGET]]

Exactly `citypass redeem` (pre-check with a plain reason, then the provider's own wallet
sends), pointed at Brownie's node (`--network citypass`: the embedded chain through its
supervisor, after `citypass node brownie`; see scripts/deploy.py). The provider's wallet comes from $CITYPASS_FROM (a
keystore name or file); on a local dev chain a QR for one named provider is redeemed by
that dev account.
"""

from brownie import web3

from citypass.cli import run_cli


def main(voucher: str, amount: str, co_payment: str = "0") -> None:
    run_cli(web3.provider.endpoint_uri, ["redeem", voucher, "--amount", amount, "--co-payment", co_payment])


def batch(file: str) -> None:
    run_cli(web3.provider.endpoint_uri, ["redeem", "--batch", file])
