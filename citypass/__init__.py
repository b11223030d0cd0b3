"""CityPass: a municipal city pass as restricted, category-bound credit on Ethereum.

A library first: connecting to a chain, the deployed contract's address book, vouchers
(build, sign, QR, verify), CSV issuance and reports. The `citypass` command and the
Brownie scripts are thin entry points over it.
"""

__version__ = "0.1.0"
