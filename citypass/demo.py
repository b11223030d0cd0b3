"""The whole city-pass lifecycle on a fresh local chain, ending in the municipal report.

    python -m citypass.demo [--residents 1000] [--redemptions 2000] [--workdir .citypass-demo] [--report report]

Everything goes through the `citypass` package, as the municipality, providers and
residents would use it: deploy with separate role keys, three budgets for the current
year, six providers, a generated CSV of synthetic residents issued through the
exactly-once path, residents' pass QRs (contract v2 spending-limit vouchers) scanned at the
providers with the amount typed at the till (with the refusals a till meets), a refundable
payment and its refund, a correction, a lost phone, a revoked pass, settlement, expiry and
reclaim. The
summary and the report are then rebuilt from the chain's events alone and must reconcile
to the cent.

The demo runs its own embedded Anvil in its own work directory (never the user's
`.citypass`), which it wipes at the start and stops at the end (`--keep-node` leaves it
running to explore with `citypass --workdir ...`). All people are synthetic: resident keys
are derived from labels, no names are used anywhere.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from citypass import finance, issuance, passqr, redemption, wallet
from citypass import settings as S
from citypass.clock import next_block_time
from citypass.money import plain_euros
from citypass import report as rep
from citypass import voucher as V
from citypass.chain import Chain, connect
from citypass.contract import Deployment, deploy
from citypass.errors import CityPassError
from citypass.keys import load_account
from citypass.node import node_stop
from citypass.reasons import Reason
from citypass.tx import send, send_many

DAY = 86_400
MARKER = ".citypass-demo"  # marks a work directory as the demo's own, safe to wipe
CATEGORIES = {0: "sport", 1: "culture", 2: "education"}
SPORT, CULTURE, EDUCATION = 0, 1, 2
WEB_PORT = 8600  # `citypass web`'s default --port (a test checks they agree)
PROVIDER_FUNDING = 10 * 10**18  # wei each provider gets for gas (providers pay their own redemptions)
BATCH_VOUCHERS = 100  # vouchers per redeemBatch transaction (~5M gas)

# The municipality's roles, each its own key (Anvil dev accounts: this is a local demo).
# Pass office = registrar + issuer: `enrollAndIssue` needs both on the same caller.
ROLE_KEYS = {
    "admin": "dev:0",
    "budget manager": "dev:1",
    "provider manager": "dev:2",
    "pass office (registrar + issuer)": "dev:3",
    "treasurer": "dev:4",
    "pauser": "dev:5",
}


@dataclass(frozen=True)
class ProviderSpec:
    """A provider and how residents pay there (prices in cents; the pass pays up to the
    provider's limit and the credit left, the resident pays the rest as co-payment)."""

    name: str
    categories: tuple[int, ...]
    max_amount: int  # the fraud brake per payment
    prices: tuple[int, ...]  # typical full prices
    own_share: float  # part of the price the resident always pays (co-payment policy)
    weight: float  # how popular it is


PROVIDERS = (
    ProviderSpec("Swimming pool", (SPORT,), 5_000, (550, 550, 550, 4_500), 0.0, 5),
    ProviderSpec("Sports club", (SPORT,), 15_000, (6_000, 9_000, 12_000), 0.1, 2),
    ProviderSpec("Museum", (CULTURE,), 4_000, (1_250, 1_500, 2_000), 0.0, 3),
    ProviderSpec("Theatre", (CULTURE,), 7_500, (1_800, 2_500, 3_500), 0.2, 3),
    ProviderSpec("Library", (CULTURE, EDUCATION), 6_000, (2_500, 3_000, 1_000), 0.0, 3),
    ProviderSpec("Music school", (CULTURE, EDUCATION), 20_000, (9_000, 12_000, 15_000), 0.15, 1),
)


@dataclass(frozen=True)
class BudgetSpec:
    category: int
    name: str
    per_resident: tuple[int, int]  # (adults, households with children), cents
    share: float  # part of the residents who get this budget


@dataclass
class Scenario:
    residents: int = 1_000
    redemptions: int = 2_000
    rounds: int = 8  # redemption weeks (fewer when the year ends sooner)
    seed: int = 2026
    users_share: float = 0.7  # residents who will use their pass at all


@dataclass
class Resident:
    index: int
    account: LocalAccount
    children: bool

    @property
    def address(self) -> str:
        return self.account.address


def derived_account(label: str) -> LocalAccount:
    """A synthetic key from a label: reproducible, and obviously nobody's real key."""
    return Account.from_key(keccak(text=f"citypass-demo:{label}"))


euro_csv = plain_euros  # the issuance files' amount column


# ---------------------------------------------------------------------------- bookkeeping
class GasLog:
    """Gas used per kind of transaction, from the receipts (what providers and the
    municipality actually pay)."""

    def __init__(self) -> None:
        self.kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # tx count, gas, items

    def add(self, kind: str, receipts: Any, items: int | None = None) -> None:
        receipts = list(receipts) if isinstance(receipts, (list, tuple)) else [receipts]
        entry = self.kinds[kind]
        entry[0] += len(receipts)
        entry[1] += sum(int(r["gasUsed"]) for r in receipts)
        entry[2] += len(receipts) if items is None else items

    def rows(self) -> list[tuple[str, int, int, int, int]]:
        """(kind, transactions, items, total gas, gas per item)."""
        return [(k, n, items, gas, gas // max(items, 1)) for k, (n, gas, items) in self.kinds.items()]


@dataclass
class DemoResult:
    summary: rep.Summary
    reconciliation: list[str]
    chain_checks: list[str]
    report: rep.ReportFiles
    timings: dict[str, float]
    gas: GasLog
    refusals: list[tuple[str, Reason]]
    redeemed: int  # vouchers redeemed, by the events


# ---------------------------------------------------------------------------- the demo
class Demo:
    def __init__(self, scenario: Scenario, workdir: Path, report_dir: Path, console: Console,
                 keep_node: bool = False):
        self.s = scenario
        self.workdir = workdir
        self.report_dir = report_dir
        self.console = console
        self.keep_node = keep_node
        self.rnd = random.Random(scenario.seed)
        self.timings: dict[str, float] = {}
        self.gas = GasLog()
        self.refusals: list[tuple[str, Reason]] = []
        self.chain: Chain
        self.dep: Deployment
        self.roles: dict[str, LocalAccount] = {}
        self.providers: dict[str, LocalAccount] = {}  # name -> provider key
        self.budgets: dict[int, int] = {}  # category -> budget id
        self.residents: list[Resident] = []
        self.credit: dict[tuple[str, int], int] = defaultdict(int)  # (holder, budget) -> cents, to plan vouchers
        self.next_nonce: dict[tuple[str, int], int] = defaultdict(int)  # the phone app's own counter
        self.redeemed: list[redemption.Scan] = []  # in order

    # -------------------------------------------------------------- helpers
    def say(self, text: str) -> None:
        self.console.print(text, soft_wrap=True)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.console.rule(f"[bold]{name}")
        start = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - start

    def progress(self) -> Progress:
        return Progress(TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=self.console, transient=False)

    def receipts(self, hashes: Any) -> list[dict[str, int]]:
        """{'gasUsed'} of the transactions `hashes`, in one JSON-RPC batch."""
        raw = self.chain.rpc_batch([("eth_getTransactionReceipt", [h]) for h in sorted(hashes)])
        return [{"gasUsed": int(r["gasUsed"], 16)} for r in raw]

    def c(self) -> Any:
        return self.dep.contract.functions

    def now(self) -> int:
        return self.chain.now()

    def advance_to(self, timestamp: int) -> None:
        now = self.now()
        if timestamp > now:
            self.chain.advance_time(timestamp - now)

    # -------------------------------------------------------------- phases
    def run(self) -> DemoResult:
        try:
            with self.phase("1. Fresh local chain and deployment"):
                self.start_chain()
                self.deploy()
            with self.phase("2. Budgets and providers"):
                self.create_budgets()
                self.register_providers()
            with self.phase("3. Residents enrolled and credited from CSV (exactly once)"):
                self.issue_credit()
            with self.phase("4. Redemptions at the till"):
                self.redeem_all()
            with self.phase("5. Refund, lost phone, revoked pass"):
                self.refund_migrate_revoke()
            with self.phase("6. Settlement of every provider"):
                self.settle_all()
            with self.phase("7. Budgets end; leftover credit reclaimed"):
                self.reclaim_all()
            with self.phase("8. Summary and report from the events"):
                result = self.summarize_and_report()
            self.print_timings()
            self.print_dashboard()
            return result
        finally:
            if not self.keep_node:
                node_stop(self.workdir)

    def start_chain(self) -> None:
        prepare_workdir(self.workdir)
        self.chain = connect(None, workdir=self.workdir, start_node=True)
        self.say(f"{self.chain.name}, work directory {self.workdir}")

    def deploy(self) -> None:
        for role, spec in ROLE_KEYS.items():
            self.roles[role] = load_account(spec, self.chain)
        r = self.roles
        office = r["pass office (registrar + issuer)"].address
        self.dep = deploy(
            self.chain, r["admin"], admin=r["admin"].address, budget_manager=r["budget manager"].address,
            provider_manager=r["provider manager"].address, registrar=office, issuer=office,
            treasurer=r["treasurer"].address, pauser=r["pauser"].address, workdir=self.workdir,
        )
        table = Table("role", "address", title=f"CityPass deployed at {self.dep.address} (block {self.dep.block})")
        for role, account in r.items():
            table.add_row(role, account.address)
        self.console.print(table)

    def create_budgets(self) -> None:
        year = datetime.fromtimestamp(self.now(), timezone.utc).year
        if datetime(year + 1, 1, 1, tzinfo=timezone.utc).timestamp() - self.now() < 3 * DAY:
            # Too little of this year is left for the scenario's weeks: start the demo's
            # clock on 1 January instead (a dev chain's clock may be moved forward).
            year += 1
            self.advance_to(int(datetime(year, 1, 1, tzinfo=timezone.utc).timestamp()))
        start = int(datetime(year, 1, 1, tzinfo=timezone.utc).timestamp())
        end = int(datetime(year + 1, 1, 1, tzinfo=timezone.utc).timestamp()) - 1
        bm = self.roles["budget manager"]
        send_many(self.chain, bm, [self.c().defineCategory(c, n) for c, n in CATEGORIES.items()])
        n = self.s.residents
        specs = self.budget_specs(year)
        fns = []
        for spec in specs:
            cap = _round_up(int(n * spec.share * max(spec.per_resident) * 1.1), 100_000)  # the council's appropriation
            fns.append(self.c().createBudget(spec.category, start, end, cap, spec.name))
        receipts = send_many(self.chain, bm, fns)
        self.gas.add("create budget", receipts)
        ids = self.c().budgets().call()
        for spec, budget in zip(specs, ids):
            self.budgets[spec.category] = budget
            cap = self.c().budgetTotals(budget).call()[0]
            self.say(f"budget [bold]{spec.name}[/]: cap {rep.eur_text(cap)}, valid "
                     f"{datetime.fromtimestamp(start, timezone.utc):%Y-%m-%d} .. "
                     f"{datetime.fromtimestamp(end, timezone.utc):%Y-%m-%d}")

    def budget_specs(self, year: int) -> list[BudgetSpec]:
        return [
            BudgetSpec(SPORT, f"Sport {year}", (10_000, 15_000), 1.0),
            BudgetSpec(CULTURE, f"Culture {year}", (6_000, 6_000), 1.0),
            BudgetSpec(EDUCATION, f"Education {year}", (12_000, 12_000), 0.45),
        ]

    def register_providers(self) -> None:
        pm = self.roles["provider manager"]
        fns = []
        for spec in PROVIDERS:
            account = derived_account(f"provider:{spec.name}")
            self.providers[spec.name] = account
            mask = sum(1 << c for c in spec.categories)
            fns.append(self.c().addProvider(account.address, mask, spec.max_amount, spec.name))
        self.gas.add("register provider", send_many(self.chain, pm, fns))
        self.fund_providers()
        table = Table("provider", "address", "categories", "limit per payment")
        for spec in PROVIDERS:
            table.add_row(spec.name, self.providers[spec.name].address,
                          ", ".join(CATEGORIES[c] for c in spec.categories), rep.eur_text(spec.max_amount))
        self.console.print(table)

    def fund_providers(self) -> None:
        """Providers pay gas for the redemptions they submit: the admin sends them some ETH."""
        admin = self.roles["admin"]
        w3 = self.chain.w3
        nonce = w3.eth.get_transaction_count(admin.address, "pending")
        price = w3.eth.gas_price * 2
        hashes = []
        for i, account in enumerate(self.providers.values()):
            tx = {"to": account.address, "value": PROVIDER_FUNDING, "gas": 21_000, "gasPrice": price,
                  "nonce": nonce + i, "chainId": self.chain.chain_id}
            hashes.append(w3.eth.send_raw_transaction(admin.sign_transaction(tx).raw_transaction))
        for h in hashes:
            w3.eth.wait_for_transaction_receipt(h)

    # -------------------------------------------------------------- issuance
    def make_residents(self) -> None:
        self.residents = [
            Resident(i, derived_account(f"resident:{i}"), self.rnd.random() < 0.45) for i in range(self.s.residents)
        ]

    def write_csvs(self) -> dict[int, Path]:
        """One issuance file per budget, in the strict `holder,amount` format."""
        folder = self.workdir / "issuance"
        folder.mkdir(parents=True, exist_ok=True)
        year = datetime.fromtimestamp(self.now(), timezone.utc).year
        files = {}
        for spec in self.budget_specs(year):
            lines = ["holder,amount"]
            for r in self.residents:
                if spec.share < 1.0 and not r.children:
                    continue  # education credit is for households with children
                amount = spec.per_resident[1] if r.children else spec.per_resident[0]
                lines.append(f"{r.address},{euro_csv(amount)}")
            path = folder / f"{CATEGORIES[spec.category]}-{year}.csv"
            path.write_text("\n".join(lines) + "\n")
            files[spec.category] = path
        return files

    def issue_credit(self) -> None:
        self.make_residents()
        files = self.write_csvs()
        office = self.roles["pass office (registrar + issuer)"]
        for category, path in files.items():
            budget = self.budgets[category]
            plan = issuance.plan_issuance(self.dep, path, budget)  # validates the whole file first
            before = issuance.snapshot(self.dep, plan)
            with self.progress() as progress:
                task = progress.add_task(f"{path.name}: {len(plan.rows)} residents", total=len(plan.rows))
                results = issuance.execute(self.dep, office, plan,
                                           on_sent=lambda r: progress.advance(task, len(r.send.rows)))
            for r in results:
                self.gas.add("issuance batch (per resident)", [{"gasUsed": r.gas_used}], items=len(r.send.rows))
            recon = issuance.reconcile(self.dep, plan, before, results)
            if not recon.ok:
                raise CityPassError(f"{path.name} does not reconcile:\n" + "\n".join(recon.lines()))
            self.say(f"  {path.name}: {len(plan.rows)} rows, {rep.eur_text(plan.total)} in {len(results)} transactions;"
                     f" reconciled ({'; '.join(n for n, ok in recon.checks if ok)})")
            # Exactly once: the same file again sends nothing.
            again = issuance.plan_issuance(self.dep, path, budget)
            if again.sends:
                raise CityPassError(f"re-running {path.name} would send {len(again.sends)} batches again")
            self.say(f"  re-run of {path.name}: all {len(again.done_batches)} batches already issued, nothing sent")
            for row in plan.rows:  # the phone apps know their balances; the demo plans with them
                self.credit[(row.holder, budget)] += row.amount

    # -------------------------------------------------------------- redemptions
    def sign(self, resident: LocalAccount, budget: int, max_amount: int, *, provider: str = passqr.ANY_PROVIDER,
             nonce: int | None = None, deadline: int | None = None) -> V.SignedVoucher:
        """A voucher as the resident's phone signs it into the pass QR: up to `max_amount`,
        any approved provider, valid for the municipality's pass QR deadline (24 h)."""
        key = (resident.address, budget)
        if nonce is None:
            nonce = self.next_nonce[key]
            self.next_nonce[key] += 1
        if deadline is None:
            deadline = next_block_time(self.chain) + S.Settings().pass_qr_ttl_seconds
        v = V.Voucher(resident.address, provider, budget, max_amount, nonce, deadline)
        return V.sign(v, resident.key, self.chain.chain_id, self.dep.address)

    def limit(self, holder: str, budget: int) -> int:
        """The pass QR's maxAmount: min(balance, the per-scan limit)."""
        return max(1, min(self.credit[(holder, budget)], S.Settings().scan_limit_cents))

    def plan_voucher(self, users: Sequence[Resident]) -> tuple[Resident, str, int, int, int] | None:
        """(resident, provider name, budget, amount, co-payment) for one realistic purchase,
        or None if the drawn resident has no credit left for the drawn provider."""
        resident = self.rnd.choice(users)
        spec = self.rnd.choices(PROVIDERS, weights=[p.weight for p in PROVIDERS])[0]
        budgets = [self.budgets[c] for c in spec.categories if self.credit[(resident.address, self.budgets[c])] >= 100]
        if not budgets:
            return None
        budget = self.rnd.choice(budgets)
        price = self.rnd.choice(spec.prices)
        pay = min(price - int(price * spec.own_share), spec.max_amount, self.credit[(resident.address, budget)])
        pay -= pay % 5  # whole 5-cent steps, like the price list
        if pay <= 0:
            return None
        return resident, spec.name, budget, pay, price - pay

    def redeem_all(self) -> None:
        users = self.rnd.sample(self.residents, max(2, int(len(self.residents) * self.s.users_share)))
        end_of_year = min(self.budgets_until())
        rounds = max(1, self.s.rounds)
        used = self.single_redemptions(users)  # the till's pre-check path, with refusals
        # Spread the weeks over what is left of the year (a demo run in late December gets
        # shorter "weeks"), leaving two days for the refund and the lost phone.
        step = max(60, min(7 * DAY, (end_of_year - 2 * DAY - self.now()) // (rounds + 1)))
        per_round = [self.s.redemptions // rounds + (1 if i < self.s.redemptions % rounds else 0) for i in range(rounds)]
        holder = next(u for u in users if u.address == used.signed.voucher.holder)
        with self.progress() as progress:
            task = progress.add_task("vouchers collected and redeemed", total=self.s.redemptions)
            for week, count in enumerate(per_round):
                by_provider: dict[str, list[redemption.Scan]] = defaultdict(list)
                made = misses = 0
                while made < count:
                    planned = self.plan_voucher(users)
                    if planned is None:
                        misses += 1
                        if misses > 50 * len(users):
                            raise CityPassError(f"the residents ran out of credit after {made} vouchers this week: "
                                                "ask for fewer --redemptions or more --residents")
                        continue
                    resident, name, budget, amount, co_payment = planned
                    signed = self.sign(resident.account, budget, max(amount, self.limit(resident.address, budget)))
                    self.credit[(resident.address, budget)] -= amount
                    by_provider[name].append(redemption.Scan(signed, amount, co_payment))
                    made += 1
                replay = None
                if week == 0:  # a voucher with a used nonce slipped into an offline batch: skipped, not fatal
                    v = used.signed.voucher
                    replay = redemption.Scan(self.sign(holder.account, v.budget, v.max_amount, nonce=v.nonce),
                                             used.amount, used.co_payment)
                    by_provider["Museum"].append(replay)
                for name, vouchers in by_provider.items():
                    self.redeem_offline(name, vouchers, expect_skipped={replay} if replay in vouchers else set())
                    progress.advance(task, len([v for v in vouchers if v is not replay]))
                self.advance_to(self.now() + step)

    def redeem_offline(self, name: str, vouchers: list[redemption.Scan], expect_skipped: set[redemption.Scan]) -> None:
        """A provider submits the vouchers it collected with `redeemBatch`."""
        outcomes = redemption.redeem_batch(self.dep, self.providers[name], vouchers, chunk=BATCH_VOUCHERS)
        self.gas.add("redeem batch (per voucher)", self.receipts({o.tx_hash for o in outcomes if o.tx_hash}),
                     items=len(vouchers))
        self.redeemed += [vouchers[o.index] for o in outcomes if o.redeemed]
        for o in outcomes:
            expected = vouchers[o.index] in expect_skipped
            if o.redeemed == expected:
                raise CityPassError(f"{name}: voucher {o.index} was {'redeemed' if o.redeemed else 'skipped: ' + o.message}")
            if expected:
                self.refusals.append(("replayed voucher in an offline batch", o.reason))
                self.say(f"  [red]skipped[/] in {name}'s offline batch (replayed voucher): {o.message}")

    def budgets_until(self) -> list[int]:
        return [b & ((1 << 40) - 1) for b in self.budgets.values()]

    def scan(self, provider: LocalAccount, pq: passqr.PassQR, amount: int, co_payment: int = 0, *,
             qr: bool = False, refundable: bool = False) -> redemption.Scan:
        """One scan at the till: the pass QR text is decoded, the till picks the voucher of a
        budget it is approved for, types the amount, pre-checks and redeems."""
        text = pq.encode()
        if qr:  # the resident's phone shows a QR code; the till reads it back from the image
            png = wallet.write_qr(text, self.workdir / "pass-qr.png")
            text = wallet.read_qr(png)
        signed = redemption.pick(self.dep, wallet.load_pass_qr(text), provider.address)
        done = redemption.redeem(self.dep, provider, signed, amount, co_payment, refundable)
        kind = "redeem refundable (single scan)" if refundable else "redeem (single scan)"
        self.gas.add(kind, [{"gasUsed": done.gas_used}])
        scan = redemption.Scan(signed, amount, co_payment, refundable)
        self.redeemed.append(scan)
        v = signed.voucher
        self.credit[(v.holder, v.budget)] -= amount
        how = " (pass QR image decoded, pre-checked)" if qr else ""
        self.say(f"  scan at {self.name_of(provider.address)}{how}: {rep.eur_text(amount)} from the pass"
                 f" (QR limit {rep.eur_text(v.max_amount)}) + {rep.eur_text(co_payment)} co-payment"
                 f"{', refundable' if refundable else ''} — redeemed in block {done.block}")
        return scan

    def one(self, resident: LocalAccount, budget: int, max_amount: int | None = None, **kw: Any) -> passqr.PassQR:
        """A pass QR with one voucher (a resident holding one budget, or a paper coupon)."""
        signed = self.sign(resident, budget, max_amount or self.limit(resident.address, budget), **kw)
        v = signed.voucher
        return passqr.PassQR(signed.chain_id, signed.contract, v.holder, v.deadline, v.provider,
                             (passqr.Entry(v.budget, v.max_amount, v.nonce, passqr.to_compact(signed.signature)),))

    def single_redemptions(self, users: Sequence[Resident]) -> redemption.Scan:
        """A handful of scans at the till, one at a time: pass QR, pre-check, redeem. Then
        the refusals a till meets, each with the chain's plain reason. Returns a redemption."""
        pool, museum = self.providers["Swimming pool"], self.providers["Museum"]
        theatre = self.providers["Theatre"]
        sport, culture = self.budgets[SPORT], self.budgets[CULTURE]
        first, second = users[0], users[1]

        # The phone's own pass QR: one voucher per budget the resident holds credit in; the
        # pool takes sport only, so its till picks the sport voucher.
        phone = wallet.pass_qr(self.dep, first.account)
        for e in phone.entries:
            self.next_nonce[(first.address, e.budget)] = max(self.next_nonce[(first.address, e.budget)], e.nonce + 1)
        self.scan(pool, phone, 550, qr=True)
        self.say(f"  (that pass QR carried {len(phone.entries)} vouchers: QR version {passqr.qr_version(phone.encode())})")
        self.scan(museum, self.one(second.account, culture), 1_250)
        used = self.scan(museum, self.one(first.account, culture), 1_500, 250)
        # A course that may be cancelled: the clerk marks the payment refundable.
        self.refundable = self.scan(theatre, self.one(second.account, culture), 1_800, 700, refundable=True)

        self.refuse("replayed voucher", museum, used.signed, used.amount)  # the same QR code scanned twice
        self.refuse("wrong category", museum, self.sign(first.account, sport, 500), 500)
        self.refuse("above the QR's limit", museum, self.sign(first.account, culture, 500), 501)
        self.refuse("made out to another provider", museum,
                    self.sign(first.account, culture, 500, provider=pool.address), 500)
        # The music school's limit (200 euro) is above any culture credit, so the credit is what fails.
        school = self.providers["Music school"]
        too_much = self.credit[(second.address, culture)] + 1_000
        self.refuse("not enough credit", school, self.sign(second.account, culture, too_much), too_much)
        late = self.sign(second.account, sport, 550)
        self.advance_to(late.voucher.deadline + 60)  # the pass QR was shown yesterday: a screenshot
        self.refuse("deadline passed", pool, late, 550)
        return used

    def refuse(self, label: str, provider: LocalAccount, signed: V.SignedVoucher, amount: int) -> Reason | None:
        """The till tries to redeem; the pre-check refuses and the clerk reads out why."""
        try:
            redemption.redeem(self.dep, provider, signed, amount)
        except redemption.VoucherRefused as refused:
            self.refusals.append((label, refused.reason))
            self.say(f"  [red]refused[/] ({label}) at {self.name_of(provider.address)}: {refused}")
            return refused.reason
        raise CityPassError(f"the {label} voucher was redeemed; the demo expected a refusal")

    def name_of(self, address: str) -> str:
        return next((n for n, a in self.providers.items() if a.address == address), address)

    # -------------------------------------------------------------- refund, migration, revocation
    def refund_migrate_revoke(self) -> None:
        office = self.roles["pass office (registrar + issuer)"]
        # Refund: the theatre course was cancelled; the theatre returns what that refundable
        # payment debited (the chain stored it at the scan, and caps the refunds there).
        paid = self.refundable
        v = paid.signed.voucher
        provider = self.providers["Theatre"]
        result = redemption.refund(self.dep, provider, v.holder, v.budget, v.nonce)  # all of it
        self.gas.add("refund", [{"gasUsed": result.gas_used}])
        self.credit[(v.holder, v.budget)] += result.amount
        self.say(f"  refund: Theatre returned {rep.eur_text(result.amount)} to {result.to}"
                 f" (refundable payment, nonce {v.nonce}, block {result.block})")
        try:
            redemption.refund(self.dep, provider, v.holder, v.budget, v.nonce, 1)
        except redemption.VoucherRefused as refused:
            self.say(f"  [red]refused[/] (a second refund of it): {refused}")
        else:
            raise CityPassError("a second refund of a fully refunded payment went through")

        # Correction: the pass office credited one resident €10 too much; it takes that back.
        sport = self.budgets[SPORT]
        wrong = max(self.residents, key=lambda r: self.credit[(r.address, sport)])
        fixed = finance.correct(self.dep, office, wrong.address, sport, 1_000, "CASE-2026-0001")
        self.gas.add("correct", self.receipts([fixed.tx_hash]))
        self.credit[(wrong.address, sport)] -= 1_000
        self.say(f"  correction: took back {rep.eur_text(fixed.amount)} of sport credit issued in error to "
                 f"{wrong.address} (reference {fixed.reference})")

        # Lost phone: the pass moves to the resident's new key with all its credit.
        users_with_credit = sorted(self.residents, key=lambda r: -self.credit[(r.address, sport)])
        lost = users_with_credit[0]
        new_key = derived_account(f"resident:{lost.index}:new-phone")
        held = [b for b in self.budgets.values() if self.credit[(lost.address, b)] > 0]
        self.gas.add("migrate pass", send(self.chain, office, self.c().migratePass(lost.address, new_key.address, held)))
        for b in held:
            self.credit[(new_key.address, b)] += self.credit.pop((lost.address, b))
        self.say(f"  lost phone: pass {lost.address} moved to {new_key.address} ({len(held)} budgets)")
        pool = self.providers["Swimming pool"]
        self.refuse("old phone after migration", pool, self.sign(lost.account, sport, 550), 550)
        self.say("  the new phone's pass QR:")
        self.scan(pool, wallet.pass_qr(self.dep, new_key), 550)

        # Revocation: the pass is withdrawn; its credit is reclaimed after the budgets end.
        revoked = users_with_credit[1]
        self.gas.add("revoke pass", send(self.chain, office, self.c().revokePass(revoked.address)))
        self.say(f"  revoked pass {revoked.address}")
        self.refuse("revoked pass", pool, self.sign(revoked.account, sport, 550), 550)

    # -------------------------------------------------------------- settlement and reclaim
    def settle_all(self) -> None:
        treasurer = self.roles["treasurer"]
        year = datetime.fromtimestamp(self.now(), timezone.utc).year
        for i, (name, account) in enumerate(self.providers.items(), start=1):
            if not redemption.balance(self.dep, account.address):
                self.say(f"  {name}: nothing to settle")
                continue
            reference = f"NL-GEM-{year}-PAY-{i:05d}"
            result = finance.settle(self.dep, treasurer, account.address, reference)
            self.gas.add("settle provider", self.receipts([result.tx_hash]))
            self.say(f"  settled {name}: {rep.eur_text(result.total)} under payment reference {reference}")

    def reclaim_all(self) -> None:
        end = max(self.budgets_until())
        self.advance_to(end + DAY)
        self.say(f"  chain time moved to {datetime.fromtimestamp(self.now(), timezone.utc):%Y-%m-%d}, past every budget's end")
        bm = self.roles["budget manager"]
        for category, budget in self.budgets.items():
            with self.progress() as progress:
                task = progress.add_task(f"reclaim {CATEGORIES[category]}", total=None)
                result = finance.reclaim(self.dep, bm, budget,
                                         on_progress=lambda done, total: progress.update(task, completed=done, total=total))
            self.gas.add("reclaim batch (per holder)", self.receipts(result.tx_hashes), items=result.holders)
            self.say(f"  reclaimed {CATEGORIES[category]}: {rep.eur_text(result.total)} from {result.holders} residents")

    # -------------------------------------------------------------- the figures
    def summarize_and_report(self) -> DemoResult:
        from citypass.index import EventIndex

        index = EventIndex.open(self.dep, self.workdir)  # the event index, as `citypass report` reads it
        try:
            built = self._build_report(index)
        finally:
            index.close()
        return self._print_report(built)

    def _build_report(self, index: Any) -> Any:
        return rep.build_report(  # provider names and reference texts come from the chain's events
            self.dep, self.report_dir, index=index,
            title="CityPass demo report",
            intro=(f"A simulated year of the city pass: {self.s.residents:,} synthetic residents received credit for "
                   "sport, culture and education, and spent it at six local providers. Every figure below is "
                   "rebuilt from the public events on the chain."),
            extra={"Gas used per kind of transaction": [
                (kind, f"{n:,} transactions, {items:,} items, {per:,} gas per item")
                for kind, n, items, gas, per in self.gas.rows()
            ]},
        )

    def _print_report(self, built: Any) -> DemoResult:
        summary = built.summary
        table = Table("budget", "issued", "spent", "refunded", "settled", "reclaimed", "with residents",
                      "with providers", "take-up", title=f"Per budget (from the events, as of block {built.block})")
        for b in summary.budgets:
            table.add_row(b.name, *(rep.eur_text(x) for x in (b.issued, b.redeemed, b.refunded, b.settled, b.reclaimed,
                                                                b.held_by_residents, b.held_by_providers)),
                          f"{100 * b.take_up:.0f}%")
        self.console.print(table)
        self.console.print("[bold]Reconciliation[/] (every line checked in code):")
        for line in built.reconciliation + built.chain_checks:
            self.console.print(f"  [green]✓[/] {line}", soft_wrap=True)  # one line each, copy-paste friendly

        gas_table = Table("transaction", "txs", "items", "total gas", "gas per item", title="Gas used (from receipts)")
        for kind, n, items, gas, per in self.gas.rows():
            gas_table.add_row(kind, f"{n:,}", f"{items:,}", f"{gas:,}", f"{per:,}")
        self.console.print(gas_table)
        files = built.files
        self.say(f"report written: {files.html} ({len(files.csvs)} CSV tables, {len(files.charts)} charts)")
        redeemed = sum(1 for r in summary.activity.redemptions if r.nonce is not None)
        return DemoResult(summary, built.reconciliation, built.chain_checks, files, self.timings, self.gas,
                          self.refusals, redeemed)

    def print_dashboard(self) -> None:
        """The last lines: where the live dashboard of this chain is and how to open it."""
        for line in dashboard_hint(self.workdir, self.keep_node):
            self.console.print(line, soft_wrap=True, highlight=False, markup=False)

    def print_timings(self) -> None:
        table = Table("phase", "seconds", title="Phase timings")
        for name, seconds in self.timings.items():
            table.add_row(name, f"{seconds:.1f}")
        table.add_row("[bold]total", f"[bold]{sum(self.timings.values()):.1f}")
        self.console.print(table)


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def dashboard_url(port: int = WEB_PORT) -> str:
    return f"http://127.0.0.1:{port}/dashboard/"


def dashboard_hint(workdir: Path, node_running: bool = False, port: int = WEB_PORT) -> list[str]:
    """How to open the demo chain's dashboard: `citypass web` on the demo's work directory
    (it starts the embedded node again from its saved state if it is not running)."""
    return [
        f"Dashboard of this chain: {dashboard_url(port)}",
        f"  open it with: citypass --workdir {workdir} web --port {port}   (then open the URL in a browser;"
        f" {'the demo node is still running' if node_running else 'it starts the demo chain again'}; Ctrl-C stops it)",
    ]


def prepare_workdir(workdir: Path) -> None:
    """Wipes the demo's own work directory (never one it did not create) for a fresh chain."""
    if workdir.exists() and any(workdir.iterdir()):
        if not (workdir / MARKER).exists():
            raise CityPassError(
                f"{workdir} exists and is not a demo work directory (no {MARKER} file): "
                "choose another --workdir; the demo never touches a real one"
            )
        node_stop(workdir)
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text("created by python -m citypass.demo; wiped by its next run\n")


def run(scenario: Scenario, workdir: str | Path = ".citypass-demo", report_dir: str | Path = "report",
        console: Console | None = None, keep_node: bool = False) -> DemoResult:
    """Runs the whole demo; raises CityPassError (or ReconciliationError) if anything is off."""
    return Demo(scenario, Path(workdir), Path(report_dir), console or Console(), keep_node).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m citypass.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=1_000, help="synthetic residents to enrol (default 1000)")
    parser.add_argument("--redemptions", type=int, default=2_000, help="vouchers to redeem (default 2000)")
    parser.add_argument("--rounds", type=int, default=8, help="weeks the redemptions are spread over (default 8)")
    parser.add_argument("--seed", type=int, default=2026, help="random seed of the scenario")
    parser.add_argument("--workdir", default=".citypass-demo", help="the demo chain's own work directory")
    parser.add_argument("--report", default="report", help="where to write the report (default report/)")
    parser.add_argument("--keep-node", action="store_true", help="leave the demo chain running afterwards")
    args = parser.parse_args(argv)
    if args.residents < 10 or args.redemptions < 10 or args.rounds < 1:
        parser.error("--residents and --redemptions must be at least 10, --rounds at least 1")
    # Piped output (make, CI logs) gets room for the tables instead of rich's 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 120)
    try:
        run(Scenario(args.residents, args.redemptions, args.rounds, args.seed), args.workdir, args.report, console,
            args.keep_node)
    except CityPassError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/] {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
