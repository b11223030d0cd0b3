"""CityPass calls proposed as Safe transactions, signed by the Safe's owners one by one and
executed once the threshold is met.

A proposal is one or more Safe transactions with consecutive Safe nonces (an issuance file
of many batches is one proposal, approved at once), a plain description of what they do and
the owners' signatures. It lives in `<workdir>/safe-proposals/<hash>.json` (no keys: only
the calls and signatures, which are public once executed anyway). Nothing in the file is
trusted: each transaction's hash is recomputed from its fields and checked against the
Safe's own getTransactionHash before signing or executing, every signature is recovered and
checked against the Safe's owners on chain, and whether a transaction was executed is read
from the Safe's ExecutionSuccess events, not from the file.

Exactly once: a Safe executes each nonce once, and an open proposal (one with a transaction
still to execute) refuses a second proposal of the same call, or of the same budget and
issuance tranche (CityPass's batch ids derive from the file, so a re-run plans the same
batches); the chain refuses a batch id used before anyway.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from citypass import safe as S
from citypass.chain import Chain
from citypass.errors import ROLE_IDS, CityPassError, date_text, euros, role_name

DIRECTORY = "safe-proposals"


@dataclass
class ProposedTx:
    to: str
    data: str  # 0x-hex call data
    nonce: int
    hash: str  # 0x-hex SafeTx hash
    what: str  # plain words
    value: int = 0
    signatures: dict[str, str] = field(default_factory=dict)  # owner -> 0x-hex signature
    executed_tx: str | None = None  # a cache; the chain's ExecutionSuccess event decides

    def safe_tx(self, chain_id: int, safe: str) -> S.SafeTx:
        return S.SafeTx(chain_id, safe, to_checksum_address(self.to), bytes.fromhex(self.data[2:]), self.nonce,
                        self.value)


@dataclass
class Proposal:
    id: str  # the first transaction's SafeTx hash
    chain_id: int
    safe: str
    kind: str  # "call" or "issue"
    description: str
    txs: list[ProposedTx]
    details: dict[str, Any] = field(default_factory=dict)
    dedupe: list[str] = field(default_factory=list)
    created: str = ""
    block: int = 0  # the chain's block when proposed: events are looked for from here


class AlreadyProposed(CityPassError):
    def __init__(self, message: str, proposal: Proposal):
        super().__init__(message)
        self.proposal = proposal


# ------------------------------------------------------------------ the store
def directory(workdir: Path | str) -> Path:
    return Path(workdir) / DIRECTORY


def save(workdir: Path | str, p: Proposal) -> Path:
    path = directory(workdir) / f"{p.id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(asdict(p), indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)  # atomic: a crash never leaves half a proposal
    return path


def _read(path: Path) -> Proposal:
    try:
        raw = json.loads(path.read_text())
        raw["txs"] = [ProposedTx(**t) for t in raw["txs"]]
        return Proposal(**raw)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise CityPassError(f"the proposal file {path} is unreadable: {exc}") from None


def load_all(workdir: Path | str, chain_id: int | None = None) -> list[Proposal]:
    folder = directory(workdir)
    found = [_read(p) for p in sorted(folder.glob("0x*.json"))] if folder.exists() else []
    found = [p for p in found if chain_id is None or p.chain_id == chain_id]
    return sorted(found, key=lambda p: (p.safe, min(t.nonce for t in p.txs), p.created))


def find(workdir: Path | str, ref: str, chain_id: int | None = None) -> Proposal:
    """A proposal by its hash, any of its transactions' hashes, or a unique prefix of one."""
    text = ref.strip().lower()
    if not text.startswith("0x") or len(text) < 8 or any(c not in "0123456789abcdef" for c in text[2:]):
        raise CityPassError(f"{ref!r}: give a Safe transaction hash (0x…, at least 6 hex digits of it)")
    items = load_all(workdir, chain_id)
    hits = [p for p in items if any(h.lower().startswith(text) for h in [p.id] + [t.hash for t in p.txs])]
    if not hits:
        raise CityPassError(f"no proposal {ref} in {directory(workdir)} (see `citypass safe list`)")
    if len(hits) > 1:
        raise CityPassError(f"{ref} fits {len(hits)} proposals: give more of the hash")
    return hits[0]


def discard(workdir: Path | str, p: Proposal) -> None:
    (directory(workdir) / f"{p.id}.json").unlink(missing_ok=True)


# ------------------------------------------------------------------ status
@dataclass(frozen=True)
class TxState:
    tx: ProposedTx
    state: str  # executed | ready | waiting | superseded
    executed_tx: str | None
    signed_by: tuple[str, ...]  # current owners whose signature is valid
    bad: tuple[str, ...]  # sentences about signatures that do not count


def _check_hash(chain: Chain, p: Proposal, t: ProposedTx) -> S.SafeTx:
    """The transaction rebuilt from its fields; refuses a file whose hash does not match them."""
    stx = t.safe_tx(p.chain_id, p.safe)
    if p.chain_id != chain.chain_id:
        raise CityPassError(f"proposal {p.id} is for chain {p.chain_id}, not this chain {chain.chain_id}")
    if "0x" + stx.hash().hex() != t.hash.lower():
        raise CityPassError(f"proposal {p.id}: the hash {t.hash} does not match the transaction's fields (the file was "
                            "changed); discard it and propose again")
    return stx


def states(chain: Chain, p: Proposal, info: S.SafeInfo | None = None) -> list[TxState]:
    info = info or S.safe_info(chain, p.safe)
    out = []
    for t in p.txs:
        stx = _check_hash(chain, p, t)
        signed, bad = [], []
        for owner, sig in t.signatures.items():
            try:
                signer = S.recover(stx.hash(), bytes.fromhex(sig[2:]))
            except CityPassError as exc:
                bad.append(f"the signature listed for {owner} is malformed ({exc})")
                continue
            if signer != to_checksum_address(owner):
                bad.append(f"the signature listed for {owner} was made by {signer}")
            elif signer not in info.owners:
                bad.append(f"{signer} signed, but is not an owner of Safe {p.safe} (owners: {', '.join(info.owners)})")
            else:
                signed.append(signer)
        if t.nonce < info.nonce:
            done = t.executed_tx or S.executed_in(chain, p.safe, stx.hash(), p.block)
            state = "executed" if done else "superseded"
        else:
            done = None
            state = "ready" if t.nonce == info.nonce else "waiting"
        out.append(TxState(t, state, done, tuple(sorted(signed)), tuple(bad)))
    return out


def is_open(chain: Chain, p: Proposal, info: S.SafeInfo | None = None) -> bool:
    return any(s.state in ("ready", "waiting") for s in states(chain, p, info))


def summary(chain: Chain, p: Proposal) -> dict[str, Any]:
    """What `safe show` prints: the description, and per transaction its state and signatures."""
    info = S.safe_info(chain, p.safe)
    items = states(chain, p, info)
    open_ = [s for s in items if s.state in ("ready", "waiting")]
    status = ("executed" if all(s.state == "executed" for s in items) else
              "superseded" if any(s.state == "superseded" for s in items) and not open_ else
              "partly executed" if any(s.state == "executed" for s in items) else "pending")
    low = min((len(s.signed_by) for s in open_), default=info.threshold)
    return {
        "proposal": p.id, "safe": p.safe, "threshold": info.threshold, "owners": list(info.owners),
        "what": p.description, "status": status,
        "signatures": f"{low} of {info.threshold}" + ("" if low >= info.threshold or not open_ else
                                                      f" (needs {info.threshold - low} more)"),
        "details": p.details, "proposed": p.created,
        "transactions": [{"safe_tx_hash": s.tx.hash, "nonce": s.tx.nonce, "what": s.tx.what, "state": s.state,
                          "signed_by": list(s.signed_by), "executed_in": s.executed_tx, "problems": list(s.bad)}
                         for s in items],
    }


# ------------------------------------------------------------------ propose
def _call_key(to: str, data: bytes) -> str:
    return f"call:{to_checksum_address(to)}:0x{keccak(data).hex()}"


def propose(chain: Chain, workdir: Path | str, safe: str, calls: Sequence[tuple[str, bytes, str]], *,
            description: str, kind: str = "call", details: dict[str, Any] | None = None,
            dedupe: Sequence[str] = (), simulate: bool = True) -> Proposal:
    """Records `calls` ((to, data, what) each) as Safe transactions of `safe` at the next free
    nonces. Each call is first run as the Safe would run it, so one CityPass would refuse is
    refused now. An open proposal with the same call or `dedupe` key refuses this one."""
    if not calls:
        raise CityPassError("nothing to propose")
    info = S.safe_info(chain, safe)
    keys = [_call_key(to, data) for to, data, _ in calls] + list(dedupe)
    used: set[int] = set()
    for other in load_all(workdir, chain.chain_id):
        if other.safe != info.address:
            continue
        open_states = [s for s in states(chain, other, info) if s.state in ("ready", "waiting")]
        if not open_states:
            continue
        used |= {s.tx.nonce for s in open_states}
        if set(keys) & set(other.dedupe):
            signed = min(len(s.signed_by) for s in open_states)
            raise AlreadyProposed(
                f"this is proposed already, as Safe transaction {other.id} ({other.description}; {signed} of "
                f"{info.threshold} signatures): nothing new was proposed. Owners sign it with `citypass safe sign "
                f"{other.id}`, then `citypass safe execute {other.id}`", other)
    for to, data, what in calls if simulate else ():
        try:
            S.simulate(chain, S.SafeTx(chain.chain_id, info.address, to, data, info.nonce))
        except CityPassError as exc:
            raise CityPassError(f"{what}: the Safe's call would be refused: {exc}; nothing was proposed") from None
    txs, nonce = [], info.nonce
    for to, data, what in calls:
        while nonce in used:
            nonce += 1
        stx = S.SafeTx(chain.chain_id, info.address, to_checksum_address(to), bytes(data), nonce)
        txs.append(ProposedTx(stx.to, "0x" + stx.data.hex(), nonce, "0x" + stx.hash().hex(), what))
        nonce += 1
    first = txs[0].safe_tx(chain.chain_id, info.address)
    if first.hash_on_chain(chain) != first.hash():  # the encoding is checked against the Safe itself
        raise CityPassError(f"the Safe {info.address} computes another transaction hash than CityPass: is it Safe {S.VERSION}?")
    p = Proposal(txs[0].hash, chain.chain_id, info.address, kind, description, txs, details or {}, keys,
                 time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), int(chain.w3.eth.block_number))
    save(workdir, p)
    return p


# ------------------------------------------------------------------ sign and execute
def require_owner(chain: Chain, p: Proposal, account: LocalAccount) -> S.SafeInfo:
    """The proposal's Safe, if `account` is one of its owners now (else a refusal that names them)."""
    info = S.safe_info(chain, p.safe)
    if account.address not in info.owners:
        raise CityPassError(f"{account.address} is not an owner of Safe {p.safe} (owners: {', '.join(info.owners)}); "
                            "nothing was signed: sign with an owner's own key (--from)")
    return info


def _open_to_sign(chain: Chain, p: Proposal, info: S.SafeInfo, signer: str) -> list[TxState]:
    items = states(chain, p, info)
    open_ = [s for s in items if s.state in ("ready", "waiting")]
    if not open_:
        raise CityPassError(f"proposal {p.id} has nothing left to sign ({', '.join(sorted({s.state for s in items}))})")
    if all(signer in s.signed_by for s in open_):
        raise CityPassError(f"{signer} signed proposal {p.id} already")
    for s in open_:
        stx = s.tx.safe_tx(p.chain_id, p.safe)
        if stx.hash_on_chain(chain) != stx.hash():
            raise CityPassError(f"Safe {p.safe} computes another hash for transaction {s.tx.hash}: nothing was signed")
    return open_


def _store(chain: Chain, workdir: Path | str, p: Proposal, info: S.SafeInfo, signer: str,
           signatures: Mapping[str, bytes]) -> tuple[int, int]:
    """Checks every signature recovers to `signer`, a current owner, over its transaction's own
    hash, and only then writes them all (nothing half-done); (least signatures, threshold)."""
    if signer not in info.owners:
        raise CityPassError(f"{signer} is not an owner of Safe {p.safe} (owners: {', '.join(info.owners)}); "
                            "nothing was signed")
    open_ = _open_to_sign(chain, p, info, signer)
    checked: list[tuple[ProposedTx, bytes]] = []
    for s in open_:
        sig = signatures.get(s.tx.hash.lower()) or signatures.get(s.tx.hash)
        if sig is None:
            raise CityPassError(f"no signature for transaction {s.tx.hash} of proposal {p.id}: nothing was signed")
        if S.recover(s.tx.safe_tx(p.chain_id, p.safe).hash(), sig) != signer:
            raise CityPassError(f"the signature for transaction {s.tx.hash} is not {signer}'s signature of that "
                                "transaction (another key or another transaction): nothing was signed")
        checked.append((s.tx, sig))
    for tx, sig in checked:
        tx.signatures[signer] = "0x" + sig.hex()
    save(workdir, p)
    done = [s for s in states(chain, p, info) if s.state in ("ready", "waiting")]
    return min(len(s.signed_by) for s in done), info.threshold


def typed_data(chain: Chain, p: Proposal) -> dict[str, dict[str, Any]]:
    """Per transaction still to sign: its SafeTx hash -> the EIP-712 typed data a browser
    wallet signs (eth_signTypedData_v4)."""
    return {s.tx.hash.lower(): s.tx.safe_tx(p.chain_id, p.safe).typed_data()
            for s in states(chain, p) if s.state in ("ready", "waiting")}


def add_signatures(chain: Chain, workdir: Path | str, p: Proposal, signer: str,
                   signatures: Mapping[str, bytes]) -> tuple[int, int]:
    """Signatures made elsewhere (an owner's browser wallet), keyed by SafeTx hash: each is
    recovered and must be `signer`'s, a current owner's, of that very transaction."""
    info = S.safe_info(chain, p.safe)
    return _store(chain, workdir, p, info, to_checksum_address(signer),
                  {k.lower(): v for k, v in signatures.items()})


def sign(chain: Chain, workdir: Path | str, p: Proposal, account: LocalAccount) -> tuple[int, int]:
    """The owner `account` signs every transaction of `p` still to execute; (signatures of
    the least-signed one, threshold). Refuses a key that is not an owner."""
    info = require_owner(chain, p, account)
    open_ = _open_to_sign(chain, p, info, account.address)
    sigs = {s.tx.hash.lower(): S.sign(account, s.tx.safe_tx(p.chain_id, p.safe).hash()) for s in open_}
    return _store(chain, workdir, p, info, account.address, sigs)


@dataclass(frozen=True)
class Executed:
    tx: ProposedTx
    tx_hash: str
    block: int
    gas_used: int


def _still_to_execute(chain: Chain, workdir: Path | str, p: Proposal, info: S.SafeInfo) -> list[TxState]:
    """The proposal's transactions still to execute, in nonce order, after the checks made
    before any send: no signature that does not count, no nonce used by another Safe
    transaction, and the first one at the Safe's nonce now (else: which proposal goes first)."""
    items = states(chain, p, info)
    bad = [b for s in items if s.state in ("ready", "waiting") for b in s.bad]
    if bad:
        raise CityPassError(f"proposal {p.id}: {bad[0]}; that signature does not count and nothing was sent "
                            "(discard the proposal and propose again)")
    superseded = [s for s in items if s.state == "superseded"]
    if superseded:
        raise CityPassError(f"Safe nonce {superseded[0].tx.nonce} of proposal {p.id} was used by another Safe "
                            "transaction: this proposal can no longer execute; discard it and propose again")
    todo = [s for s in items if s.state in ("ready", "waiting")]
    if todo and todo[0].state == "waiting":
        s = todo[0]
        blocker = next((o for o in load_all(workdir, p.chain_id) if o.safe == p.safe
                        and any(t.nonce == info.nonce for t in o.txs) and o.id != p.id), None)
        raise CityPassError(f"transaction {s.tx.hash} has Safe nonce {s.tx.nonce}, but the Safe is at nonce {info.nonce}: "
                            + (f"execute proposal {blocker.id} ({blocker.description}) first" if blocker else
                               "an earlier proposal must execute first"))
    return todo


def _signed_enough(p: Proposal, info: S.SafeInfo, s: TxState) -> dict[str, bytes]:
    """The threshold's signatures of one transaction (owner -> signature), or a refusal naming who is missing."""
    if len(s.signed_by) < info.threshold:
        missing = [o for o in info.owners if o not in s.signed_by]
        raise CityPassError(f"proposal {p.id} has {len(s.signed_by)} of the {info.threshold} signatures Safe "
                            f"{p.safe} needs: {info.threshold - len(s.signed_by)} more from {', '.join(missing)} "
                            f"(`citypass safe sign {p.id} --from KEY`); nothing was sent")
    return {o: bytes.fromhex(s.tx.signatures[o][2:]) for o in s.signed_by[:info.threshold]}


def _simulated(chain: Chain, p: Proposal, s: TxState) -> S.SafeTx:
    stx = s.tx.safe_tx(p.chain_id, p.safe)
    try:
        S.simulate(chain, stx)
    except CityPassError as exc:
        raise CityPassError(f"{s.tx.what}: the call would be refused now: {exc}; nothing was sent") from None
    return stx


def execution_calls(chain: Chain, workdir: Path | str, p: Proposal) -> list[tuple[ProposedTx, Any]]:
    """The Safe's execTransaction calls (web3 contract functions) that execute what is left of
    `p`, in nonce order, for a wallet elsewhere to send (the back office: the server holds no
    key). The same checks as execute(): signatures, threshold, nonce, and each call run as the
    Safe would run it. Send them one after the other (each needs the one before mined). Empty
    when everything was executed already."""
    info = S.safe_info(chain, p.safe)
    out = []
    for s in _still_to_execute(chain, workdir, p, info):
        sigs = _signed_enough(p, info, s)
        out.append((s.tx, S.exec_call(chain, _simulated(chain, p, s), sigs)))
    return out


def execute(chain: Chain, workdir: Path | str, p: Proposal, sender: LocalAccount, *,
            confirmations: int | None = None, on_done: Any = None) -> list[Executed]:
    """Executes the proposal's transactions still to execute, in nonce order, each once the
    threshold of owners signed it. Checked before each send: the Safe's nonce, the
    signatures (each recovered and checked against the owners on chain) and the call itself
    (run as the Safe would); a refusal sends nothing more."""
    from citypass.tx import wait_idle

    done: list[Executed] = []
    while True:
        # An execution an earlier, interrupted run left in flight counts: wait for it to be
        # mined before reading the Safe's nonce, so it is never sent a second time.
        wait_idle(chain, sender.address)
        info = S.safe_info(chain, p.safe)
        todo = _still_to_execute(chain, workdir, p, info)
        if not todo:
            if not done:
                last = states(chain, p, info)[-1]
                raise CityPassError(f"proposal {p.id} was executed already (in {last.executed_tx})")
            return done
        s = todo[0]
        sigs = _signed_enough(p, info, s)
        stx = _simulated(chain, p, s)
        receipt = S.execute(chain, sender, stx, sigs, confirmations=confirmations)
        tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
        s.tx.executed_tx = tx_hash
        save(workdir, p)
        item = Executed(s.tx, tx_hash, int(receipt["blockNumber"]), int(receipt["gasUsed"]))
        done.append(item)
        if on_done:
            on_done(item)


# ------------------------------------------------------------------ plain words for CityPass calls
def describe_call(dep: Any, data: bytes) -> str:
    """What a CityPass call does, in words (for the proposal's description)."""
    from citypass import budget_id

    try:
        fn, args = dep.contract.decode_function_input(data)
    except Exception:
        return f"call 0x{data[:4].hex()} on {dep.address}"
    name = fn.fn_name

    def role(value: Any) -> str:
        text = role_name(bytes(value))
        return "admin" if text == "ADMIN" else text.lower().replace("_", "-")

    def budget(value: int) -> str:
        return f"budget #{budget_id.decode(value).serial}"

    words = {
        "grantRole": lambda: f"grant the {role(args['role'])} role to {args['account']}",
        "revokeRole": lambda: f"revoke the {role(args['role'])} role from {args['account']}",
        "beginDefaultAdminTransfer": lambda: f"begin handing the admin role to {args['newAdmin']} (it accepts after the delay)",
        "acceptDefaultAdminTransfer": lambda: "accept the admin role (the pending admin transfer)",
        "cancelDefaultAdminTransfer": lambda: "cancel the pending admin transfer",
        "pause": lambda: "pause CityPass (emergency stop: no credit moves)",
        "unpause": lambda: "unpause CityPass (end the emergency stop)",
        "defineCategory": lambda: f"name category {args['category']} {args['name']!r}",
        "createBudget": lambda: (f"create budget {args['name']!r} (category {args['category']}, "
                                 f"{date_text(args['validFrom'])} .. {date_text(args['validUntil'])}, cap {euros(args['cap'])})"),
        "setBudgetCap": lambda: f"set the cap of {budget(args['budget'])} to {euros(args['cap'])}",
        "addProvider": lambda: f"register provider {args['name']!r} ({args['provider']})",
        "settle": lambda: (f"settle {euros(sum(args['amounts']))} with provider {args['provider']} under payment "
                           f"reference {args['referenceText']!r}"),
        "correct": lambda: (f"take back {euros(args['amount'])} of {budget(args['budget'])} from {args['holder']} "
                            f"under {args['referenceText']!r}"),
        "enrollPasses": lambda: f"enrol {len(args['holders'])} pass(es), valid until {date_text(args['validUntil'])}",
        "renewPasses": lambda: f"renew {len(args['holders'])} pass(es) until {date_text(args['validUntil'])}",
    }
    if name in words:
        try:
            return words[name]()
        except (KeyError, TypeError, ValueError):
            pass
    shown = ", ".join(f"{k}={role(v) if k == 'role' else v}" for k, v in args.items())
    return f"call {name}({shown})"


def _data(fn: Any) -> bytes:
    return bytes.fromhex(fn._encode_transaction_data()[2:])


def issuance_proposal(dep: Any, plan: Any, budget_name: str, serial: int, *, file_name: str | None = None,
                      file_bytes: bytes | None = None) -> dict[str, Any]:
    """The Safe proposal of an issuance plan (issuance.Plan): one Safe transaction per batch,
    and what the second officer checks before signing: the total of the budget, the file's
    hash, the number of residents and of new passes, the batch ids. Keyword arguments for
    Ctx.propose / propose(). An uploaded file (the back office) gives its own name and bytes;
    otherwise they are read from plan.path."""
    import hashlib

    from citypass.money import euros as eur

    f = dep.contract.functions
    calls = []
    for s in plan.sends:
        holders, amounts = [r.holder for r in s.rows], [r.amount for r in s.rows]
        fn = (f.issue(s.batch_id, plan.budget, holders, amounts) if s.kind == "credit"
              else f.enrollAndIssue(s.batch_id, plan.budget, plan.pass_valid_until, holders, amounts))
        what = (f"batch {s.batch + 1}: {'enrol and credit' if s.kind == 'enrol' else 'credit'} {len(s.rows):,} "
                f"resident(s) {eur(s.total)}, batch id 0x{s.batch_id.hex()}")
        calls.append((dep.address, _data(fn), what))
    digest = hashlib.sha256(Path(plan.path).read_bytes() if file_bytes is None else file_bytes).hexdigest()
    name = file_name or Path(plan.path).name
    tranche = f", tranche {plan.tranche!r}" if plan.tranche else ""
    ids = ["0x" + s.batch_id.hex() for s in plan.sends]
    description = (f"issue {eur(plan.to_send_total)} of {budget_name} (budget #{serial}{tranche}) to "
                   f"{plan.to_send_rows:,} residents ({plan.new_residents:,} new passes) from {name}, "
                   f"in {len(plan.sends)} batch transaction(s), batch ids {', '.join(i[:18] + '…' for i in ids)}")
    details = {
        "file": name, "file_sha256": digest, "file_rows": len(plan.rows),
        "budget_totals": [f"#{serial} {budget_name}: {eur(plan.to_send_total)}"],
        "residents": plan.to_send_rows, "new_passes": plan.new_residents,
        "already_issued_residents": len(plan.already), "batch_ids": ids,
    } | ({"tranche": plan.tranche} if plan.tranche else {})
    return {"calls": calls, "description": description, "kind": "issue", "details": details,
            "dedupe": [f"tranche:{plan.budget}:0x{plan.tag.hex()}"]}


def settle_fn(dep: Any, provider: str, reference: str, budgets: Sequence[int] | None = None) -> tuple[Any, str]:
    """The settle call finance.settle would send (checked the same way), and its dedupe key:
    one open proposal per payment reference."""
    from citypass import finance
    from citypass.redemption import balance

    provider = to_checksum_address(provider)
    f = dep.contract.functions
    ref = finance.reference_hash(reference)
    if f.referenceSettled(ref).call():
        raise CityPassError(f"payment reference {finance.normalize_reference(reference)!r} was already used; nothing was proposed")
    held = balance(dep, provider)
    if budgets is not None:
        held = [b for b in held if b.budget in set(budgets)]
    if not held:
        raise CityPassError(f"provider {provider} holds no credit to settle; nothing was proposed")
    fn = f.settle(provider, [b.budget for b in held], [b.cents for b in held], finance.normalize_reference(reference))
    return fn, f"settle-reference:0x{ref.hex()}"


def reclaim_fns(dep: Any, budget: int, batch_size: int) -> list[Any]:
    """The reclaim calls finance.reclaim would send: the holders with credit left, in batches."""
    from citypass import finance
    from citypass.tx import call_many

    candidates = finance.reclaim_candidates(dep, budget)
    balances = [int(b) for (b,) in call_many(dep.chain, dep.contract, "balanceOf", [(h, budget) for h in candidates])]
    left = [h for h, b in zip(candidates, balances) if b]
    if not left:
        raise CityPassError("no resident holds credit of this budget: nothing to reclaim, nothing was proposed")
    f = dep.contract.functions
    return [f.reclaim(budget, left[i:i + batch_size]) for i in range(0, len(left), batch_size)]


def both_roles_refusal(chain: Chain, address: str, roles_after: Sequence[str]) -> str | None:
    """Why `address` must not end up with both the registrar and the issuer role, or None.

    One person holding both can enrol addresses they control and fund them up to a budget's
    cap. A Safe may hold both (`enrollAndIssue` needs them on one account): its threshold is
    the four eyes. Local dev chains are exempt (the demo's dev keys)."""
    if not {"REGISTRAR", "ISSUER"} <= set(roles_after) or chain.is_local_dev:
        return None
    if bytes(chain.w3.eth.get_code(to_checksum_address(address))):
        return None  # a contract (a Safe, checked where it is given) signs with its own rules
    return (f"{address} is a plain key (no contract), and it would hold both the REGISTRAR and the ISSUER role: one "
            "person could then enrol addresses they control and credit them up to a budget's cap, which breaks the "
            "four-eyes principle. Give both roles to a Safe (its threshold is the second pair of eyes; "
            "`enrollAndIssue` needs both on one account), or pass --allow-both-roles-on-one-key if this is intended")


__all__ = ["Proposal", "ProposedTx", "AlreadyProposed", "propose", "sign", "execute", "execution_calls", "states",
           "summary", "find", "typed_data", "add_signatures", "issuance_proposal",
           "load_all", "discard", "describe_call", "both_roles_refusal", "ROLE_IDS"]
