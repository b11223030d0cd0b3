"""The fast log decoder of citypass.events against web3's own decoder, on raw logs built
from the contract's ABI (every argument kind: indexed and not, addresses, uint8 enums,
bytes32, strings, arrays), plus its refusals. The chain-backed path (fetch_events) runs in
tests/test_demo.py."""

from __future__ import annotations

import pytest
from eth_abi import encode as abi_encode
from eth_utils import event_abi_to_log_topic, to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3._utils.events import get_event_data

from citypass import events as ev
from citypass.contract import load_artifact

ABI = load_artifact()["abi"]
EVENTS = {e["name"]: e for e in ABI if e["type"] == "event"}
A1 = to_checksum_address("0x" + "a1" * 20)
A2 = to_checksum_address("0x" + "b2" * 20)
BIG_ID = (7 << 128) | (3 << 80) | (1_767_225_600 << 40) | 1_798_761_599


def raw_log(name: str, values: dict, block: int = 12, log_index: int = 3) -> dict:
    """A log as eth_getLogs returns it (hex strings), encoded from the ABI."""
    abi = EVENTS[name]
    topics = ["0x" + bytes(event_abi_to_log_topic(abi)).hex()]
    for i in abi["inputs"]:
        if i["indexed"]:
            topics.append("0x" + abi_encode([i["type"]], [values[i["name"]]]).hex())
    data = [i for i in abi["inputs"] if not i["indexed"]]
    return {
        "address": A1, "topics": topics,
        "data": "0x" + abi_encode([i["type"] for i in data], [values[i["name"]] for i in data]).hex(),
        "blockNumber": hex(block), "transactionHash": "0x" + "77" * 32, "transactionIndex": "0x0",
        "logIndex": hex(log_index), "blockHash": "0x" + "88" * 32, "removed": False,
    }


def web3_decode(log: dict) -> dict:
    """The oracle: web3's get_event_data on the same log."""
    formatted = {**log, "topics": [HexBytes(t) for t in log["topics"]], "data": HexBytes(log["data"]),
                 "blockNumber": int(log["blockNumber"], 16), "logIndex": int(log["logIndex"], 16),
                 "transactionIndex": 0, "transactionHash": HexBytes(log["transactionHash"]),
                 "blockHash": HexBytes(log["blockHash"])}
    args = dict(get_event_data(Web3().codec, EVENTS[log_name(log)], formatted)["args"])
    return {k: ("0x" + bytes(v).hex() if isinstance(v, (bytes, bytearray)) else list(v) if isinstance(v, tuple) else v)
            for k, v in args.items()}


def log_name(log: dict) -> str:
    topic = log["topics"][0]
    return next(n for n, e in EVENTS.items() if "0x" + bytes(event_abi_to_log_topic(e)).hex() == topic)


CASES = {
    "TransferSingle": {"operator": A1, "from": A2, "to": A1, "id": BIG_ID, "value": 1_250},
    "TransferBatch": {"operator": A1, "from": A2, "to": A1, "ids": [BIG_ID, 5], "values": [10, 2**128 - 1]},
    "BudgetCreated": {"budget": BIG_ID, "category": 3, "validFrom": 1_767_225_600, "validUntil": 1_798_761_599,
                      "cap": 12_345_678, "name": "Cultuur 2026 – ünïcode"},
    "CategoryDefined": {"category": 63, "name": ""},
    "Settled": {"provider": A2, "budget": BIG_ID, "paymentReference": b"\xcd" * 32, "amount": 1},
    "VoucherSkipped": {"holder": A1, "budget": 2**200 + 7, "nonce": 2**200, "reason": 18},
    "Redeemed": {"holder": A2, "nonce": 0, "coPayment": 750},
    "PauseChanged": {"paused": True, "account": A1},
    "BatchIssued": {"batchId": b"\x01" * 32, "budget": BIG_ID, "count": 500, "total": 5_000_000},
    # contract v2
    "ProviderNamed": {"provider": A1, "name": "Muziekles, Oosterpoort – ünïcode"},
    "RefundableRedemption": {"holder": A1, "budget": BIG_ID, "nonce": 3, "amount": 1_800},
    "Refunded": {"holder": A1, "provider": A2, "budget": BIG_ID, "amount": 1_000, "redemptionNonce": 3},
    "Corrected": {"holder": A2, "budget": BIG_ID, "amount": 2_500, "referenceText": "CASE-2026-17"},
    "SettlementReference": {"paymentReference": b"\xcd" * 32, "referenceText": "INV-2026 0001"},
    "IssueSkipped": {"batchId": b"\x02" * 32, "holder": A2, "amount": 15_000},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_decoder_agrees_with_web3(name):
    log = raw_log(name, CASES[name])
    record = ev.EventDecoder(ABI).decode(log, timestamp=1_780_000_000)
    assert record is not None
    assert (record.name, record.block, record.log_index, record.timestamp) == (name, 12, 3, 1_780_000_000)
    assert record.tx_hash == "0x" + "77" * 32
    assert record.args == web3_decode(log)
    assert list(record.args) == [i["name"] for i in EVENTS[name]["inputs"]]  # ABI order


def test_every_contract_event_has_a_layout():
    decoder = ev.EventDecoder(ABI)
    assert len(decoder.topics()) == len(EVENTS)
    assert len(decoder.topics(["Redeemed", "Settled"])) == 2


def test_unknown_topic_is_not_a_citypass_event():
    log = raw_log("Redeemed", CASES["Redeemed"])
    log["topics"][0] = "0x" + "00" * 32
    assert ev.EventDecoder(ABI).decode(log, 0) is None


def test_malformed_log_is_named():
    log = raw_log("Redeemed", CASES["Redeemed"])
    log["data"] = log["data"][:-64]  # one word short
    with pytest.raises(ev.EventFetchError, match=r"cannot decode Redeemed at block 12 log 3"):
        ev.EventDecoder(ABI).decode(log, 0)
    log = raw_log("Settled", CASES["Settled"])
    log["topics"] = log["topics"][:2]
    with pytest.raises(ev.EventFetchError, match="1 indexed values, the ABI has 3"):
        ev.EventDecoder(ABI).decode(log, 0)


def test_transfer_batch_is_one_move_per_id():
    """A holder paying two budgets at once with safeBatchTransferFrom: two redemptions."""
    provider = to_checksum_address("0x" + "cc" * 20)
    records = [
        ev.EventRecord(1, 0, "0x01", 0, 0, "ProviderRegistered", {"provider": provider, "categories": 1, "maxAmount": 0}),
        ev.EventRecord(2, 0, "0x02", 0, 0, "TransferBatch",
                       {"operator": A1, "from": A1, "to": provider, "ids": [1, 2], "values": [30, 40]}),
    ]
    act = ev.activity(records)
    assert [(r.budget, r.amount, r.nonce) for r in act.redemptions] == [(1, 30, None), (2, 40, None)]


def test_v2_joins_refundable_settlement_text_and_correction():
    """A refundable scan (Redeemed then RefundableRedemption), a settlement whose
    SettlementReference comes before its burns, a correction, a name and a skipped resident."""
    provider = to_checksum_address("0x" + "cc" * 20)
    zero = ev.ZERO_ADDRESS
    ref = "0x" + "cd" * 32

    def rec(block, log, event, /, **args):
        return ev.EventRecord(block, 0, f"0x{block:02x}", 0, log, event, args)

    records = [
        rec(1, 0, "ProviderRegistered", provider=provider, categories=1, maxAmount=0),
        rec(1, 1, "ProviderNamed", provider=provider, name="Zwembad"),
        rec(2, 0, "TransferSingle", operator=A1, **{"from": zero}, to=A1, id=BIG_ID, value=5_000),
        rec(2, 1, "IssueSkipped", batchId="0x" + "02" * 32, holder=A2, amount=5_000),
        rec(2, 2, "BatchIssued", batchId="0x" + "02" * 32, budget=BIG_ID, count=1, total=5_000),
        rec(3, 0, "TransferSingle", operator=provider, **{"from": A1}, to=provider, id=BIG_ID, value=1_800),
        rec(3, 1, "Redeemed", holder=A1, nonce=3, coPayment=200),
        rec(3, 2, "RefundableRedemption", holder=A1, budget=BIG_ID, nonce=3, amount=1_800),
        rec(4, 0, "SettlementReference", paymentReference=ref, referenceText="INV-1"),
        rec(4, 1, "TransferSingle", operator=A2, **{"from": provider}, to=zero, id=BIG_ID, value=1_800),
        rec(4, 2, "Settled", provider=provider, budget=BIG_ID, paymentReference=ref, amount=1_800),
        rec(5, 0, "TransferSingle", operator=A2, **{"from": A1}, to=zero, id=BIG_ID, value=200),
        rec(5, 1, "Corrected", holder=A1, budget=BIG_ID, amount=200, referenceText="CASE-1"),
    ]
    act = ev.activity(records)
    assert [(r.amount, r.nonce, r.refundable) for r in act.redemptions] == [(1_800, 3, True)]
    assert [(x.amount, x.payment_reference) for x in act.settlements] == [(1_800, ref)]
    assert [(c.holder, c.amount, c.reference) for c in act.corrections] == [(A1, 200, "CASE-1")]
    assert act.references == {ref: "INV-1"} and act.provider_names == {provider: "Zwembad"}
    assert [(x.holder, x.amount) for x in act.issue_skipped] == [(A2, 5_000)]
    assert {k: v for k, v in ev.balances(act).items() if v} == {(BIG_ID, A1): 3_000}
