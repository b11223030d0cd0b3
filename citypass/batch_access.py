"""Access lists and gas limits of enrolment batches, computed here instead of by the node.

An issuance batch is sent with an access list (each resident ~300 gas cheaper) and a gas
limit, both from the node's `eth_createAccessList`, which runs the whole batch once more:
at 50,000 residents that second run was a third of the node's work (issue 17). An
`enrollAndIssue` batch touches the same storage for every resident (the pass slot and the
ledger slot of (resident, budget), both keyed by the resident's address), so once the node
has answered for the first window, the rest follow:

- the slot numbers are found by trying them against the node's first answer (no storage
  layout is assumed), and every answer of that window must then be predicted exactly, or
  nothing is learned and every window keeps asking the node;
- the gas limit of a batch is the largest the node gave for a batch of the same size, with
  the difference in call-data gas (zero bytes are cheaper) added. Enrolment is the dearest
  case of every resident (both slots written from zero), so a later batch can only need
  less; the exception, a resident that is a contract (its acceptance hook runs), is covered
  by the margin or, if not, fails on chain and is then sent alone with the node's estimate
  (`issuance._finish_window`), still exactly once by its batch id.

Credits (`issue`) are not predicted: a credit to a resident who already holds some of the
budget costs ~17,000 gas less than to one who holds none, so one batch says nothing safe
about the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from eth_utils import keccak

from citypass.tx import GAS_MARGIN

SLOTS_TRIED = 256  # storage slot numbers searched for the contract's mappings


def _word(value: int | bytes | str) -> bytes:
    if isinstance(value, str):
        value = bytes.fromhex(value[2:] if value.startswith("0x") else value)
    if isinstance(value, bytes):
        return value.rjust(32, b"\0")
    return value.to_bytes(32, "big")


def _key(mapping_key: int | bytes | str, slot: bytes) -> str:
    """The storage key of `mapping[mapping_key]` for a mapping at `slot` (Solidity's rule)."""
    return "0x" + keccak(_word(mapping_key) + slot).hex()


def calldata_gas(data: str) -> int:
    """The intrinsic gas of call data: 4 per zero byte, 16 per other byte."""
    raw = bytes.fromhex(data[2:])
    zeros = raw.count(0)
    return 4 * zeros + 16 * (len(raw) - zeros)


def _margin_calldata_gas(data: str) -> int:
    return int(calldata_gas(data) * GAS_MARGIN)  # the node's gas figure gets the margin (tx._access_answer)


@dataclass
class EnrolAccess:
    """What one run learned about its enrolment batches (see the module's docstring)."""

    contract: str  # lower-case address
    budget: int
    layout: tuple[bytes, bytes, bytes] | None = None  # pass slot, ledger base of the budget, batch-id slot
    fixed_keys: frozenset[str] = frozenset()  # the contract's keys every batch touches
    fixed_entries: tuple[tuple[str, tuple[str, ...]], ...] = ()  # other accounts every batch touches
    gas_less_calldata: dict[int, int] = field(default_factory=dict)  # batch size -> gas limit - margin x call data gas
    refused: bool = False  # an answer did not fit: ask the node for every window

    def known(self, sizes: Sequence[int]) -> bool:
        return not self.refused and self.layout is not None and all(n in self.gas_less_calldata for n in sizes)

    def predict(self, holders: Sequence[str], batch_id: bytes, data: str) -> tuple[list[dict[str, Any]], int]:
        """The access list and gas limit of an enrolment batch (only when `known`)."""
        return self._access_list(holders, batch_id), self.gas_less_calldata[len(holders)] + _margin_calldata_gas(data)

    def learn(self, batches: Sequence[tuple[Sequence[str], bytes, str, list[dict[str, Any]], int]]) -> None:
        """Learns from the node's answers (holders, batch id, call data, access list, gas
        limit) of enrolment batches; refuses to predict ever after if one does not fit."""
        if self.refused or not batches:
            return
        if self.layout is None and not self._find_layout(*batches[0][:2], batches[0][3]):
            self.refused = True
            return
        for holders, batch_id, data, access, gas in batches:
            if _as_sets(self._access_list(holders, batch_id)) != _as_sets(access):
                self.refused = True
                return
            rest = gas - _margin_calldata_gas(data)
            self.gas_less_calldata[len(holders)] = max(rest, self.gas_less_calldata.get(len(holders), 0))

    def _access_list(self, holders: Sequence[str], batch_id: bytes) -> list[dict[str, Any]]:
        assert self.layout is not None
        pass_slot, ledger_base, batch_slot = self.layout
        keys = set(self.fixed_keys)
        keys.add(_key(batch_id, batch_slot))
        for h in holders:
            keys.add(_key(h, pass_slot))
            keys.add(_key(h, ledger_base))
        entries = [{"address": self.contract, "storageKeys": sorted(keys)}]
        entries += [{"address": h.lower(), "storageKeys": []} for h in holders]
        return entries + [{"address": a, "storageKeys": list(k)} for a, k in self.fixed_entries]

    def _find_layout(self, holders: Sequence[str], batch_id: bytes, access: list[dict[str, Any]]) -> bool:
        by_address = _as_sets(access)
        keys = by_address.get(self.contract)
        if not keys or not holders:
            return False
        slots = [_word(s) for s in range(SLOTS_TRIED)]
        first = holders[0]
        pass_slot = next((s for s in slots if _key(first, s) in keys), None)
        ledger_base = next((b for b in (keccak(_word(self.budget) + s) for s in slots) if _key(first, b) in keys), None)
        batch_slot = next((s for s in slots if _key(batch_id, s) in keys), None)
        if pass_slot is None or ledger_base is None or batch_slot is None:
            return False
        self.layout = (pass_slot, ledger_base, batch_slot)
        varying = {_key(batch_id, batch_slot)} | {_key(h, s) for h in holders for s in (pass_slot, ledger_base)}
        self.fixed_keys = frozenset(keys - varying)
        residents = {h.lower() for h in holders}
        self.fixed_entries = tuple(sorted((a, tuple(sorted(k))) for a, k in by_address.items()
                                          if a != self.contract and a not in residents))
        return True


def _as_sets(entries: Sequence[dict[str, Any]]) -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for e in entries:
        out.setdefault(e["address"].lower(), set()).update(k.lower() for k in e.get("storageKeys", []))
    return {a: frozenset(k) for a, k in out.items()}
