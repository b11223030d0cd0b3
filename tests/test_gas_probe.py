from collections import Counter
from brownie import accounts, chain, web3
from eth_account import Account
from eth_utils import keccak

def opgas(tx):
    tr = web3.provider.make_request("debug_traceTransaction", [tx.txid, {"disableStorage": True, "disableMemory": True, "disableStack": True}])
    c = Counter(); n = Counter()
    for s in tr["result"]["structLogs"]:
        c[s["op"]] += s["gasCost"]; n[s["op"]] += 1
    return c, n

def test_probe(cp, roles, sport, culture, pool, alice, sign, residents):
    cp.grantRole(cp.REGISTRAR_ROLE(), roles.issuer, {"from": roles.admin})
    v, s = sign(alice, pool, sport, 100, nonce=0)
    cp.redeem(v, s, {"from": pool})
    v, s = sign(alice, pool, sport, 250, nonce=1, co_payment=150, compact=True)
    tx = cp.redeem(v, s, {"from": pool})
    print("REDEEM", tx.gas_used)
    c, n = opgas(tx)
    data = bytes.fromhex(tx.input[2:])
    print("REDEEM calldata gas", sum(4 if b == 0 else 16 for b in data), "len", len(data), "sig", len(s))
    print("REDEEM counts", {k: n[k] for k in ("SLOAD", "SSTORE", "JUMPI", "JUMP", "KECCAK256", "MSTORE", "MLOAD")})
    small = sum(v for k, v in c.items() if k not in ("STATICCALL", "SLOAD", "SSTORE", "LOG4", "LOG2"))
    print("REDEEM small ops", small)
    def holders(n, tag):
        return [Account.from_key(keccak(text=f"{tag}-{i}")).address for i in range(n)]
    now = chain.time()
    g = {}; ops = {}
    for k in (10, 20):
        hs = holders(k, f"e{k}")
        tx = cp.enrollAndIssue(keccak(text=f"b{k}"), sport, now + 100 * 86400, hs, [1000] * k, {"from": roles.issuer})
        g[k] = tx.gas_used; ops[k] = opgas(tx)
        tx2 = cp.issue(keccak(text=f"c{k}"), culture, hs, [1000] * k, {"from": roles.issuer})
        g[("c", k)] = tx2.gas_used; ops[("c", k)] = opgas(tx2)
    for label, a, b in (("ENROL", 10, 20), ("CREDIT", ("c", 10), ("c", 20))):
        print(label, "marginal", (g[b] - g[a]) / 10)
        diff = {op: (ops[b][0][op] - ops[a][0][op]) / 10 for op in ops[b][0]}
        cnt = {op: (ops[b][1][op] - ops[a][1][op]) / 10 for op in ops[b][1]}
        print(label, "per-resident ops", sorted(((op, d, cnt[op]) for op, d in diff.items() if d), key=lambda x: -x[1]))
