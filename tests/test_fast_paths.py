"""The hand-written fast paths give exactly what the libraries they replace give: EIP-55
checksums (eth_utils), ABI encoding of simple arguments (eth-abi), RLP (pyrlp)."""

from __future__ import annotations

import random

import pytest
import rlp
from eth_abi import encode
from eth_utils import to_checksum_address

from citypass import voucher as V
from citypass.address import eip55, is_valid_spelling
from citypass.tx import _encode_simple, rlp_encode

rng = random.Random(20261128)


def _address() -> str:
    return "0x" + rng.randbytes(20).hex()


def test_eip55_matches_eth_utils():
    for _ in range(2_000):
        a = _address()
        assert eip55(a) == to_checksum_address(a)
        assert eip55("0x" + a[2:].upper()) == to_checksum_address(a)


@pytest.mark.parametrize("text", ["0x12", "12" * 20, "0x" + "g" * 40, "0x" + "1" * 41, ""])
def test_eip55_refuses_what_is_not_an_address(text):
    with pytest.raises(ValueError):
        eip55(text)


def test_a_mixed_case_typo_is_not_a_valid_spelling():
    good = eip55("0x" + "ab" * 20)
    typo = good[:2] + good[2:].swapcase()
    assert is_valid_spelling(good) and is_valid_spelling(good.lower())
    assert not is_valid_spelling(typo)
    assert _encode_simple(("address",), (typo,)) is None  # eth-abi then refuses it with its reason


def test_simple_abi_encoding_matches_eth_abi():
    types = ("bytes32", "uint256", "uint40", "address[]", "uint256[]", "bool", "address")
    for n in (0, 1, 7, 200):
        args = (rng.randbytes(32), rng.getrandbits(256), rng.getrandbits(40), [eip55(_address()) for _ in range(n)],
                [rng.getrandbits(128) for _ in range(n)], bool(n % 2), _address())
        assert _encode_simple(types, args) == encode(list(types), list(args))


@pytest.mark.parametrize("types,args", [
    (("uint8",), (256,)), (("uint256",), (-1,)), (("uint256",), (True,)), (("bytes32",), (b"\x01" * 31,)),
    (("(address,uint256)",), (("0x" + "11" * 20, 1),)), (("string",), ("x",)), (("address[]",), (["0x12"],)),
])
def test_anything_else_is_left_to_eth_abi(types, args):
    assert _encode_simple(types, args) is None


def test_voucher_digest_matches_eth_accounts_eip712_encoder():
    for _ in range(200):
        provider = rng.choice([eip55(_address()), "0x" + "00" * 20])  # v2: a provider, or any (address(0))
        v = V.Voucher(eip55(_address()), provider, rng.getrandbits(160), rng.getrandbits(32),
                      rng.getrandbits(256), rng.getrandbits(40))
        chain_id, contract = rng.choice([1, 1337, 31337, rng.getrandbits(64)]), eip55(_address())
        assert V.digest(v, chain_id, contract) == V.digest_generic(v, chain_id, contract)


def _rlp_item(depth: int = 0):
    """A random RLP item: ints (0, small, big), byte strings of every length class, and lists."""
    kind = rng.randrange(4 if depth < 3 else 2)
    if kind == 0:
        return rng.choice([0, 1, 0x7F, 0x80, 255, 256, 2**64, rng.getrandbits(rng.randrange(1, 257))])
    if kind == 1:
        return rng.randbytes(rng.choice([0, 1, 1, 2, 20, 32, 55, 56, 57, 300, 70_000]))
    return [_rlp_item(depth + 1) for _ in range(rng.choice([0, 1, 3, 60]))]


def test_rlp_matches_pyrlp():
    for _ in range(300):
        item = _rlp_item()
        assert rlp_encode(item) == rlp.encode(item)
    for single in (b"\x00", b"\x7f", b"\x80"):  # one byte below 0x80 is its own encoding
        assert rlp_encode(single) == rlp.encode(single)
    with pytest.raises(ValueError):
        rlp_encode(-1)


def test_simple_abi_decoding_matches_eth_abi():
    from eth_abi import decode

    from citypass.tx import _decoder

    types = ("uint8", "uint40", "uint256", "bool", "address", "bytes32")
    decode_fast = _decoder(types)
    for _ in range(500):
        args = (rng.getrandbits(8), rng.getrandbits(40), rng.getrandbits(256), bool(rng.getrandbits(1)),
                _address(), rng.randbytes(32))  # eth-abi gives addresses in lower case
        answer = "0x" + encode(list(types), list(args)).hex()
        assert decode_fast(answer) == tuple(decode(list(types), bytes.fromhex(answer[2:]))) == args


@pytest.mark.parametrize("types,word", [
    (("uint8",), (256).to_bytes(32, "big")),  # too wide for uint8
    (("bool",), (2).to_bytes(32, "big")),
    (("address",), b"\x01" + bytes(31)),  # dirty padding
])
def test_what_eth_abi_refuses_is_refused_by_the_fast_decoder_too(types, word):
    from eth_abi import decode

    from citypass.tx import _decoder

    with pytest.raises(Exception) as slow:
        decode(list(types), word)
    with pytest.raises(type(slow.value)):
        _decoder(types)("0x" + word.hex())
