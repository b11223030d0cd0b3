"""Safe (Gnosis Safe) 1.4.1 multisig accounts holding CityPass roles: the few Safe calls
CityPass needs, encoded with web3/eth-abi.

safe-eth-py would be the well-kept library for this, but its py-evm needs newer hexbytes,
eth-typing and rlp than eth-brownie 1.22.2 pins (pip finds no solution beside them), so
the calls are encoded here, and tests/test_safe_hash.py checks the SafeTx hash against the
Safe contract's own getTransactionHash.

- The contracts are npm's `@safe-global/safe-contracts` 1.4.1 build artifacts, copied as
  shipped (ABI and bytecode, byte for byte) into `citypass/artifacts/Safe-1.4.1.json` by
  `python -m citypass.safe --sync-artifacts` (tests check they still equal npm's), so a
  pip-only install can talk to a Safe, and create Safe infrastructure on a dev chain.
- On a local dev chain `deploy_infra` deploys the singleton, the proxy factory and the
  fallback handler once per chain (recorded in `<workdir>/safe.json`); `create_safe` makes
  a Safe proxy with owners and a threshold. On other chains a Safe is made with the
  Safe's own tools (app.safe.global) and given to `citypass deploy --admin ADDRESS`.
- A Safe transaction (SafeTx) is always a plain call (operation 0) with no gas refund
  (safeTxGas, baseGas, gasPrice 0): whoever executes it pays the gas, and the whole
  execTransaction reverts if the inner call fails, so a failed call never uses a nonce.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3.logs import DISCARD

from citypass.chain import Chain
from citypass.errors import CityPassError

VERSION = "1.4.1"
ARTIFACT = Path(__file__).resolve().parent / "artifacts" / f"Safe-{VERSION}.json"
NPM_PACKAGE = "@safe-global/safe-contracts"
NPM_BUILD = Path("node_modules") / "@safe-global" / "safe-contracts" / "build" / "artifacts" / "contracts"
PARTS = {
    "Safe": "Safe.sol/Safe.json",
    "SafeProxyFactory": "proxies/SafeProxyFactory.sol/SafeProxyFactory.json",
    "CompatibilityFallbackHandler": "handler/CompatibilityFallbackHandler.sol/CompatibilityFallbackHandler.json",
}
INFRA_FILE = "safe.json"
ZERO = "0x" + "00" * 20

DOMAIN_TYPEHASH = keccak(text="EIP712Domain(uint256 chainId,address verifyingContract)")
SAFE_TX_TYPEHASH = keccak(text=(
    "SafeTx(address to,uint256 value,bytes data,uint8 operation,uint256 safeTxGas,uint256 baseGas,"
    "uint256 gasPrice,address gasToken,address refundReceiver,uint256 nonce)"))
EXECUTION_SUCCESS = "0x" + keccak(text="ExecutionSuccess(bytes32,uint256)").hex()

# The Safe's revert codes (contracts/libraries/Errors.md of safe-contracts 1.4.1) that a
# CityPass user can meet, as sentences.
GS_ERRORS = {
    "GS001": "the threshold has to be set before the Safe is used",
    "GS013": "the call the Safe transaction makes failed",
    "GS020": "not enough signatures for the Safe's threshold",
    "GS021": "a contract signature points outside the signature data",
    "GS024": "a contract signature was refused by its contract",
    "GS025": "a pre-approved hash was not approved by that owner",
    "GS026": "a signature is not from an owner of the Safe, or the signatures are not in owner order "
             "(or the transaction's nonce is not the Safe's current nonce)",
}


# ------------------------------------------------------------------ artifacts
def sync_artifacts(root: Path | str = ".", target: Path | str | None = None) -> Path:
    """Copies ABI and bytecode of the Safe contracts from npm's build artifacts, as shipped."""
    build = Path(root) / NPM_BUILD
    out: dict[str, Any] = {"source": f"npm {NPM_PACKAGE}@{VERSION}, build/artifacts/contracts", "version": VERSION,
                           "contracts": {}}
    for name, rel in PARTS.items():
        try:
            data = json.loads((build / rel).read_text())
        except (OSError, ValueError) as exc:
            raise CityPassError(f"cannot read {build / rel}: {exc} (run `npm ci`)") from None
        out["contracts"][name] = {"abi": data["abi"], "bytecode": data["bytecode"]}
    path = Path(target) if target is not None else ARTIFACT
    path.write_text(json.dumps(out, indent=1) + "\n")
    return path


@lru_cache(maxsize=1)
def artifacts() -> dict[str, Any]:
    try:
        return json.loads(ARTIFACT.read_text())["contracts"]
    except (OSError, ValueError, KeyError) as exc:
        raise CityPassError(f"the packaged Safe artifacts {ARTIFACT} are missing or unreadable: {exc}") from None


def safe_contract(chain: Chain, address: str) -> Any:
    return chain.w3.eth.contract(address=to_checksum_address(address), abi=artifacts()["Safe"]["abi"])


# ------------------------------------------------------------------ reading a Safe
@dataclass(frozen=True)
class SafeInfo:
    address: str
    owners: tuple[str, ...]
    threshold: int
    nonce: int
    version: str

    def describe(self) -> str:
        return f"Safe {self.address} ({self.threshold} of {len(self.owners)}: {', '.join(self.owners)})"


class NotASafe(CityPassError):
    pass


def safe_info(chain: Chain, address: str, what: str = "address") -> SafeInfo:
    """Owners, threshold and nonce of the Safe at `address`; NotASafe if it is none."""
    address = to_checksum_address(address)
    code = bytes(chain.w3.eth.get_code(address))
    if not code:
        raise NotASafe(f"{what} {address} is not a Safe: there is no contract there on chain {chain.chain_id} "
                       "(a plain key)")
    c = safe_contract(chain, address)
    try:
        version = c.functions.VERSION().call()
    except Exception:
        raise NotASafe(f"{what} {address} is a contract but not a Safe (it does not answer VERSION, getOwners "
                       "and getThreshold)") from None
    try:
        owners = tuple(to_checksum_address(o) for o in c.functions.getOwners().call())
        threshold = int(c.functions.getThreshold().call())
        nonce = int(c.functions.nonce().call())
    except Exception:
        owners, threshold, nonce = (), 0, 0
    if threshold == 0 or not owners:
        raise NotASafe(f"{what} {address} is a Safe contract that was never set up (no owners): a Safe singleton, "
                       "not a Safe made by the proxy factory")
    return SafeInfo(address, owners, threshold, nonce, str(version))


def is_safe(chain: Chain, address: str) -> bool:
    try:
        safe_info(chain, address)
    except NotASafe:
        return False
    return True


# ------------------------------------------------------------------ infrastructure on a dev chain
@dataclass(frozen=True)
class Infra:
    singleton: str
    factory: str
    fallback_handler: str


def _infra_path(workdir: Path | str) -> Path:
    return Path(workdir) / INFRA_FILE


def find_infra(chain: Chain, workdir: Path | str) -> Infra | None:
    """The Safe contracts recorded for this chain, if their code is still there."""
    path = _infra_path(workdir)
    try:
        entry = json.loads(path.read_text()).get(str(chain.chain_id)) if path.exists() else None
    except ValueError:
        raise CityPassError(f"{path} is not valid JSON: fix or remove it") from None
    if not entry:
        return None
    infra = Infra(entry["singleton"], entry["factory"], entry["fallback_handler"])
    for address in (infra.singleton, infra.factory, infra.fallback_handler):
        if not bytes(chain.w3.eth.get_code(address)):
            return None  # a reset dev chain: deploy again
    return infra


def deploy_infra(chain: Chain, deployer: LocalAccount, workdir: Path | str) -> Infra:
    """Deploys Safe 1.4.1's singleton, proxy factory and fallback handler (once per chain)."""
    from citypass.tx import send

    found = find_infra(chain, workdir)
    if found is not None:
        return found
    if not chain.is_local_dev:
        raise CityPassError(f"chain {chain.chain_id} is not a local dev chain: use the Safe contracts deployed there "
                            "(create the Safe with the Safe's own app) and pass its address")
    addresses = {}
    for name in ("Safe", "SafeProxyFactory", "CompatibilityFallbackHandler"):
        art = artifacts()[name]
        factory = chain.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        receipt = send(chain, deployer, factory.constructor())
        addresses[name] = to_checksum_address(receipt.contractAddress)
    infra = Infra(addresses["Safe"], addresses["SafeProxyFactory"], addresses["CompatibilityFallbackHandler"])
    path = _infra_path(workdir)
    book = json.loads(path.read_text()) if path.exists() else {}
    book[str(chain.chain_id)] = {"singleton": infra.singleton, "factory": infra.factory,
                                 "fallback_handler": infra.fallback_handler, "version": VERSION}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(book, indent=2) + "\n")
    tmp.replace(path)
    return infra


def create_safe(chain: Chain, sender: LocalAccount, owners: Sequence[str], threshold: int, *,
                workdir: Path | str, salt: int | None = None) -> SafeInfo:
    """A new Safe proxy with `owners` and `threshold` (Safe infrastructure deployed first on a dev chain)."""
    from citypass.tx import send

    owners = [to_checksum_address(o) for o in owners]
    if len(set(owners)) != len(owners):
        raise CityPassError("a Safe's owners must be different accounts")
    if not 1 <= threshold <= len(owners):
        raise CityPassError(f"threshold {threshold}: must be 1..{len(owners)} (the number of owners)")
    infra = deploy_infra(chain, sender, workdir)
    singleton = safe_contract(chain, infra.singleton)
    setup = singleton.functions.setup(owners, threshold, ZERO, b"", infra.fallback_handler, ZERO, 0, ZERO)
    initializer = setup._encode_transaction_data()
    factory = chain.w3.eth.contract(address=infra.factory, abi=artifacts()["SafeProxyFactory"]["abi"])
    if salt is None:  # the factory's count of proxies: unique, and the same on every fresh dev chain
        salt = len(chain.w3.eth.get_logs({"address": infra.factory, "fromBlock": 0, "toBlock": "latest",
                                          "topics": ["0x" + keccak(text="ProxyCreation(address,address)").hex()]}))
    receipt = send(chain, sender, factory.functions.createProxyWithNonce(infra.singleton, initializer, salt))
    (event,) = factory.events.ProxyCreation().process_receipt(receipt, errors=DISCARD)
    return safe_info(chain, event.args.proxy)


# ------------------------------------------------------------------ Safe transactions
@dataclass(frozen=True)
class SafeTx:
    """A call the Safe makes: always operation 0 (call), no gas refund."""

    chain_id: int
    safe: str
    to: str
    data: bytes
    nonce: int
    value: int = 0

    def struct_hash(self) -> bytes:
        return keccak(abi_encode(
            ["bytes32", "address", "uint256", "bytes32", "uint8", "uint256", "uint256", "uint256", "address", "address",
             "uint256"],
            [SAFE_TX_TYPEHASH, self.to, self.value, keccak(self.data), 0, 0, 0, 0, ZERO, ZERO, self.nonce]))

    def domain_separator(self) -> bytes:
        return keccak(abi_encode(["bytes32", "uint256", "address"], [DOMAIN_TYPEHASH, self.chain_id, self.safe]))

    def hash(self) -> bytes:
        """The EIP-712 hash the owners sign (the Safe's getTransactionHash)."""
        return keccak(b"\x19\x01" + self.domain_separator() + self.struct_hash())

    def typed_data(self) -> dict[str, Any]:
        """The EIP-712 typed data of this SafeTx, as a browser wallet's eth_signTypedData_v4 takes
        it (JSON-safe: data as 0x-hex, numbers as decimal strings); it hashes to `hash()`."""
        return {
            "types": {
                "EIP712Domain": [{"name": "chainId", "type": "uint256"},
                                 {"name": "verifyingContract", "type": "address"}],
                "SafeTx": [{"name": n, "type": t} for n, t in (
                    ("to", "address"), ("value", "uint256"), ("data", "bytes"), ("operation", "uint8"),
                    ("safeTxGas", "uint256"), ("baseGas", "uint256"), ("gasPrice", "uint256"),
                    ("gasToken", "address"), ("refundReceiver", "address"), ("nonce", "uint256"))],
            },
            "primaryType": "SafeTx",
            "domain": {"chainId": self.chain_id, "verifyingContract": self.safe},
            "message": {"to": self.to, "value": str(self.value), "data": "0x" + self.data.hex(), "operation": 0,
                        "safeTxGas": "0", "baseGas": "0", "gasPrice": "0", "gasToken": ZERO,
                        "refundReceiver": ZERO, "nonce": str(self.nonce)},
        }

    def hash_on_chain(self, chain: Chain) -> bytes:
        f = safe_contract(chain, self.safe).functions
        return bytes(f.getTransactionHash(self.to, self.value, self.data, 0, 0, 0, 0, ZERO, ZERO, self.nonce).call())


def sign(account: LocalAccount, safe_tx_hash: bytes) -> bytes:
    """An owner's ECDSA signature of the SafeTx hash itself (r ‖ s ‖ v, v = 27/28)."""
    signed = Account.unsafe_sign_hash(safe_tx_hash, account.key)
    return signed.r.to_bytes(32, "big") + signed.s.to_bytes(32, "big") + bytes([signed.v])


def recover(safe_tx_hash: bytes, signature: bytes) -> str:
    """The address that made `signature` of the hash (CityPassError if it is malformed)."""
    if len(signature) != 65 or signature[64] not in (27, 28):
        raise CityPassError(f"a signature must be 65 bytes ending in v = 27 or 28 (got {len(signature)} bytes)")
    try:
        return to_checksum_address(Account._recover_hash(safe_tx_hash, signature=signature))
    except Exception as exc:
        raise CityPassError(f"the signature cannot be recovered: {exc}") from None


def pack_signatures(signatures: dict[str, bytes]) -> bytes:
    """The signatures as execTransaction takes them: ordered by owner address, ascending."""
    return b"".join(signatures[o] for o in sorted(signatures, key=lambda a: int(a, 16)))


def explain(error: CityPassError) -> CityPassError:
    """A Safe's GSxxx revert code as a sentence."""
    text = str(error)
    for code, sentence in GS_ERRORS.items():
        if code in text:
            return CityPassError(f"the Safe refused: {sentence} ({code})")
    return error


def simulate(chain: Chain, safe_tx: SafeTx) -> None:
    """Runs the call as the Safe would (eth_call from the Safe's address): a call CityPass
    would refuse raises with CityPass's own reason, before anyone signs or pays gas."""
    from citypass.chain import RpcError
    from citypass.reverts import explain_revert

    call = {"from": safe_tx.safe, "to": safe_tx.to, "data": "0x" + safe_tx.data.hex(), "value": hex(safe_tx.value)}
    answer = chain.rpc_batch([("eth_call", [call, "latest"])], raise_errors=False)[0]
    if isinstance(answer, RpcError):
        reason = explain_revert(answer.data) if answer.data else answer.message
        raise CityPassError(reason)


def exec_call(chain: Chain, safe_tx: SafeTx, signatures: dict[str, bytes]) -> Any:
    f = safe_contract(chain, safe_tx.safe).functions
    return f.execTransaction(safe_tx.to, safe_tx.value, safe_tx.data, 0, 0, 0, 0, ZERO, ZERO,
                             pack_signatures(signatures))


def execute(chain: Chain, sender: LocalAccount, safe_tx: SafeTx, signatures: dict[str, bytes], *,
            confirmations: int | None = None) -> Any:
    """Sends execTransaction (checked by estimation first: a refusal raises, nothing is
    sent); the receipt, after checking the Safe logged ExecutionSuccess for this hash."""
    from citypass.tx import send

    try:
        receipt = send(chain, sender, exec_call(chain, safe_tx, signatures), confirmations=confirmations)
    except CityPassError as exc:
        raise explain(exc) from None
    wanted = safe_tx.hash()
    for log in receipt["logs"]:
        topics = [bytes(t) for t in log["topics"]]
        if (to_checksum_address(log["address"]) == safe_tx.safe and topics
                and "0x" + topics[0].hex() == EXECUTION_SUCCESS and topics[1] == wanted):
            return receipt
    raise CityPassError(f"transaction 0x{bytes(receipt['transactionHash']).hex()} did not execute Safe transaction "
                        f"0x{wanted.hex()} (no ExecutionSuccess)")


def executed_in(chain: Chain, safe: str, safe_tx_hash: bytes, from_block: int = 0) -> str | None:
    """The transaction in which the Safe executed `safe_tx_hash`, from its ExecutionSuccess event."""
    logs = chain.w3.eth.get_logs({"address": to_checksum_address(safe), "fromBlock": from_block, "toBlock": "latest",
                                  "topics": [EXECUTION_SUCCESS, "0x" + safe_tx_hash.hex()]})
    return "0x" + bytes(logs[0]["transactionHash"]).hex() if logs else None


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m citypass.safe", description=__doc__.splitlines()[0])
    parser.add_argument("--sync-artifacts", action="store_true", help=f"copy ABI/bytecode from npm's {NPM_PACKAGE}")
    args = parser.parse_args(argv)
    if not args.sync_artifacts:
        parser.print_help()
        return 2
    try:
        print(f"wrote {sync_artifacts()}", file=sys.stderr)
    except CityPassError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
