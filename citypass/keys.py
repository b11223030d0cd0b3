"""Keys: encrypted JSON keystores in `<workdir>/keys`, and Anvil's public dev accounts.

A key spec is a keystore name (`treasurer`), a keystore file path, or `dev:N` (Anvil's
well-known dev account N; refused unless the chain is a local dev chain, because everyone
knows those keys). Passwords come from the `password` argument, $CITYPASS_PASSWORD_<NAME>,
$CITYPASS_PASSWORD, or a prompt when a terminal is attached.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from citypass.errors import CityPassError, UsageError

if TYPE_CHECKING:
    from citypass.chain import Chain

# Anvil's (and Hardhat's) public test mnemonic: these accounts are funded on every Anvil
# dev chain and their keys are published, so they are only ever used on local dev chains.
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
DEV_ACCOUNTS = 10
DEV_BALANCE_WEI = 10_000 * 10**18
KEYS_DIR = "keys"
# scrypt work factor for new keystores; None = eth-account's default (2**18, ~1 s per
# unlock, the standard strength). Tests lower it to stay fast.
KEYSTORE_ITERATIONS: int | None = None
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

Account.enable_unaudited_hdwallet_features()
_dev_cache: dict[int, LocalAccount] = {}
_unlocked: dict[str, LocalAccount] = {}  # keystore path -> account, so one process asks once


@dataclass(frozen=True)
class KeystoreEntry:
    name: str
    address: str
    path: Path


def dev_account(index: int) -> LocalAccount:
    """Anvil's dev account `index` (derived from the public test mnemonic)."""
    if not 0 <= index < DEV_ACCOUNTS:
        raise UsageError(f"dev:{index}: dev accounts are dev:0 .. dev:{DEV_ACCOUNTS - 1}")
    if index not in _dev_cache:
        _dev_cache[index] = Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return _dev_cache[index]


def dev_index(address: str) -> int | None:
    """N if `address` is Anvil's dev account dev:N, else None."""
    for i in range(DEV_ACCOUNTS):
        if dev_account(i).address.lower() == address.lower():
            return i
    return None


def keys_dir(workdir: Path | str) -> Path:
    return Path(workdir) / KEYS_DIR


def _check_name(name: str) -> str:
    if not _NAME.match(name) or name.startswith("dev:"):
        raise UsageError(f"account name {name!r}: use letters, digits, '_', '.', '-' (up to 64)")
    return name


def password_env_names(name: str) -> list[str]:
    return [f"CITYPASS_PASSWORD_{re.sub(r'[^A-Za-z0-9]', '_', name).upper()}", "CITYPASS_PASSWORD"]


def get_password(name: str, *, confirm: bool = False, password: str | None = None) -> str:
    """The password for keystore `name`: argument, environment, or a prompt on a terminal."""
    if password is not None:
        return password
    for var in password_env_names(name):
        if var in os.environ:
            return os.environ[var]
    if not sys.stdin.isatty():
        raise CityPassError(
            f"no password for account {name!r}: set {password_env_names(name)[0]} or CITYPASS_PASSWORD"
        )
    first = getpass.getpass(f"Password for account {name!r}: ")
    if confirm and getpass.getpass("Repeat the password: ") != first:
        raise CityPassError("the passwords do not match")
    return first


def create_keystore(workdir: Path | str, name: str, private_key: bytes | str | None = None, *,
                    password: str | None = None) -> KeystoreEntry:
    """Writes a new encrypted keystore (a fresh random key unless `private_key` is given)."""
    path = keys_dir(workdir) / f"{_check_name(name)}.json"
    if path.exists():
        raise CityPassError(f"an account named {name!r} exists already ({path})")
    try:
        account = Account.create() if private_key is None else Account.from_key(private_key)
    except (ValueError, TypeError) as exc:
        raise CityPassError(f"not a valid private key (expected 32 bytes as 64 hex digits): {exc}") from None
    for entry in list_keystores(workdir):
        if entry.address == account.address:
            raise CityPassError(f"account {account.address} is in keystore {entry.name!r} already")
    secret = get_password(name, confirm=True, password=password)
    if not secret:
        raise CityPassError("an empty password is not allowed")
    keystore = Account.encrypt(account.key, secret, iterations=KEYSTORE_ITERATIONS)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Owner-only from the first byte: the file is the key.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(keystore, f)
    return KeystoreEntry(name, account.address, path)


def list_keystores(workdir: Path | str) -> list[KeystoreEntry]:
    entries = []
    for path in sorted(keys_dir(workdir).glob("*.json")):
        try:
            address = to_checksum_address(json.loads(path.read_text())["address"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a keystore: ignore rather than fail every listing
        entries.append(KeystoreEntry(path.stem, address, path))
    return entries


def _keystore_path(spec: str, workdir: Path | str) -> Path:
    named = keys_dir(workdir) / f"{spec}.json"
    if _NAME.match(spec) and named.exists():
        return named
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    known = ", ".join(e.name for e in list_keystores(workdir)) or "none"
    raise CityPassError(
        f"no account {spec!r}: not a keystore name in {keys_dir(workdir)} (known: {known}), "
        "not a keystore file, not dev:N"
    )


def load_account(spec: str, chain: "Chain | None", *, password: str | None = None,
                 workdir: Path | str | None = None) -> LocalAccount:
    """The signing account for a key spec (keystore name or path, or dev:N on a dev chain)."""
    spec = spec.strip()
    if spec.startswith("dev:"):
        try:
            index = int(spec[4:])
        except ValueError:
            raise UsageError(f"{spec!r}: expected dev:N with N a number") from None
        if chain is None or not chain.is_local_dev:
            where = "this chain" if chain is None else f"chain {chain.chain_id}"
            raise CityPassError(
                f"{spec} is a public Anvil dev key, refused on {where}: only local dev chains "
                "(chain id 31337 or 1337) accept it; use a keystore (`citypass account new`)"
            )
        account = dev_account(index)
        _fund_dev_account(chain, account.address)
        return account
    if workdir is None:
        workdir = chain.workdir if chain is not None else Path(".citypass")
    path = _keystore_path(spec, workdir)
    key = str(path.resolve())
    if key in _unlocked:
        return _unlocked[key]
    try:
        keystore = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CityPassError(f"cannot read keystore {path}: {exc}") from None
    secret = get_password(path.stem, password=password)
    try:
        account = Account.from_key(Account.decrypt(keystore, secret))
    except ValueError:
        raise CityPassError(f"wrong password for account {path.stem!r} ({path})") from None
    except (KeyError, TypeError):
        raise CityPassError(f"{path} is not an encrypted JSON keystore") from None
    _unlocked[key] = account
    return account


def _fund_dev_account(chain: "Chain", address: str) -> None:
    """Ganache funds other dev keys than Anvil: top up an empty Anvil dev account there."""
    if chain.w3.eth.get_balance(address) > 0:
        return
    for method in ("anvil_setBalance", "evm_setAccountBalance"):
        try:
            chain.rpc(method, [address, hex(DEV_BALANCE_WEI)])
            return
        except CityPassError:
            continue
