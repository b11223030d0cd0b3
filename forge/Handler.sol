// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm, HEVM_ADDRESS} from "./Vm.sol";
import {ICityPass, Voucher} from "./ICityPass.sol";

/// @title Handler: the actions forge's invariant fuzzer may take on one CityPass
/// @notice Every action takes a few random words and bounds them into a call that could
/// happen (an actor from a small pool, an amount near a real balance, a budget that exists),
/// with a fraction of deliberately wrong calls (a replayed nonce, a refund above what is left,
/// a foreign signer, a transfer that is not a payment, an expired voucher). Each action
/// calls the contract directly: if the contract refuses, the whole action reverts and
/// changes nothing (the campaign runs with fail_on_revert = false, and forge's metrics count
/// those reverts per action). If the contract accepts, the action records in ghost variables
/// what the call was meant to do, and checks that the balances moved by exactly that.
///
/// The pools are small and fixed (RESIDENTS keys, PROVIDERS addresses, MAX_BUDGETS budgets)
/// so that the actors meet each other often and every loop here is bounded.
/// @dev The handler holds every operator role; residents and providers act through vm.prank.
contract Handler {
    Vm internal constant vm = Vm(HEVM_ADDRESS);

    uint256 public constant RESIDENTS = 16; // resident keys: old and new addresses of passes
    uint256 public constant PROVIDERS = 6; // four registered by init, two left for addProvider
    uint256 public constant MAX_BUDGETS = 6;
    uint256 public constant CATEGORIES = 3;
    uint256 public constant MAX_ISSUE = 20_000; // cents per resident per issuance
    uint256 public constant MAX_VOUCHER = 6_000; // cents: a voucher's maxAmount
    uint8 internal constant NO_PASS = 0; // PassStatus
    uint8 internal constant ACTIVE = 1;
    uint8 internal constant SUSPENDED = 2;
    uint8 internal constant MIGRATED = 4;
    uint256 public constant PAUSE_GAS = 100_000; // pause/unpause must fit this, whatever the state

    uint256 internal constant SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    bytes32 internal constant VOUCHER_TYPEHASH = keccak256(
        "Voucher(address holder,address provider,uint256 budget,uint256 maxAmount,uint256 nonce,uint256 deadline)"
    );

    ICityPass public city;

    uint256[RESIDENTS] internal residentKey;
    address[RESIDENTS] public residentAddr;
    /// @notice Which resident (pass) an address belongs to: 1 + the slot of the pass's first
    /// address; a migration gives the new address the same identity. 0 = no pass ever.
    uint256[RESIDENTS] public identity;
    mapping(address => uint256) internal slotPlusOne; // resident address => 1 + slot
    address[PROVIDERS] public providerAddr;
    uint256[] public budgets;
    mapping(uint256 budget => uint40) public budgetEnd;

    /// @notice What the handler did to one resident's credit of one budget (all addresses of
    /// the pass together).
    struct Account {
        uint256 issued;
        uint256 spent; // redemptions and ERC-1155 payments to providers
        uint256 refunded; // refunds of the resident's own refundable redemptions
        uint256 corrected;
        uint256 reclaimed;
    }

    mapping(uint256 identity => mapping(uint256 budget => Account)) public accountOf;

    /// @notice What the handler did to one budget (compared with budgetTotals).
    struct Totals {
        uint256 issued;
        uint256 settled;
        uint256 reclaimed;
        uint256 corrected;
    }

    mapping(uint256 budget => Totals) public totalsOf;

    struct Redemption {
        address holder;
        uint256 budget;
        uint256 nonce;
        address provider;
        uint256 amount; // what it debited
        bool refundable;
        uint256 refunded; // what refunds of it returned so far
    }

    Redemption[] public redemptions;
    /// @notice Successful redemptions per (holder, budget, nonce): must never exceed 1.
    mapping(bytes32 => uint256) public timesRedeemed;
    mapping(bytes32 => uint256) internal redemptionPlusOne; // key => 1 + index in redemptions
    /// @notice Hot nonces (< 128) the handler saw used, per address and budget.
    mapping(address => mapping(uint256 => uint256)) public usedHotNonces;

    /// @notice The first thing a successful call did that it should not have (empty: none).
    string public violation;
    /// @notice Set when a balance or a budget total changed in a call made while paused.
    string public pauseViolation;

    uint256 public timestamp; // forge does not carry vm.warp from one call to the next: every action re-applies it
    uint256 internal batchCounter;
    uint256 internal referenceCounter;
    bytes32 internal lastBatchId;
    /// @notice Successful actions by name (for the campaign's summary).
    mapping(string => uint256) public succeeded;

    // ------------------------------------------------------------------ set-up (not fuzzed)
    constructor() {
        for (uint256 i; i < RESIDENTS; ++i) {
            residentKey[i] = uint256(keccak256(abi.encode("citypass resident", i))) % (SECP256K1_ORDER - 1) + 1;
            residentAddr[i] = vm.addr(residentKey[i]);
            slotPlusOne[residentAddr[i]] = i + 1;
            vm.label(residentAddr[i], string.concat("resident", _str(i)));
        }
        for (uint256 i; i < PROVIDERS; ++i) {
            providerAddr[i] = vm.addr(uint256(keccak256(abi.encode("citypass provider", i))) % 2 ** 200 + 1);
            vm.label(providerAddr[i], string.concat("provider", _str(i)));
        }
    }

    /// @notice Called once by the test's setUp (excluded from the fuzzer's targets): the
    /// campaign starts from one budget, four providers and three residents with credit.
    function init(ICityPass city_) external {
        require(address(city) == address(0), "init twice");
        city = city_;
        vm.warp(1_790_000_000); // December 2026, not forge's 1
        timestamp = block.timestamp;
        bytes32 domain = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("CityPass"),
                keccak256("2"),
                block.chainid,
                address(city_)
            )
        );
        require(city_.domainSeparator() == domain, "EIP-712 domain is not CityPass version 2");
        createBudget(0, 7 days, 100_000);
        addProvider(0, 1, 0);
        addProvider(1, 7, 2_500);
        addProvider(2, 3, 1_000);
        addProvider(3, 5, 0);
        address[] memory holders = new address[](3);
        uint256[] memory amounts = new uint256[](3);
        for (uint256 i; i < 3; ++i) {
            holders[i] = residentAddr[i];
            amounts[i] = 5_000 * (i + 1);
        }
        _enrollAndIssue(budgets[0], holders, amounts, uint40(timestamp + 365 days));
    }

    // ------------------------------------------------------------------ the actions
    /// @dev Re-applies the handler's clock, and flags any credit move made while paused.
    modifier tracked(string memory name) {
        vm.warp(timestamp);
        bool wasPaused = city.paused();
        uint256 known = budgets.length; // a budget created now holds nothing yet
        bytes32 before = wasPaused ? _snapshot(known) : bytes32(0);
        _;
        if (wasPaused && _snapshot(known) != before && bytes(pauseViolation).length == 0) {
            pauseViolation = string.concat("credit moved while paused, in ", name);
        }
        succeeded[name] += 1;
    }

    function createBudget(uint256 categorySeed, uint256 durationSeed, uint256 capSeed)
        public
        tracked("createBudget")
    {
        require(budgets.length < MAX_BUDGETS, "the budget pool is full");
        uint8 category = uint8(categorySeed % CATEGORIES);
        // One budget in four starts an hour from now (redemptions refused until then).
        uint40 validFrom = uint40(timestamp + (_mix(categorySeed) % 4 == 3 ? 1 hours : 0));
        uint40 validUntil = uint40(validFrom + _bound(durationSeed, 1 days, 30 days));
        uint128 cap = uint128(_bound(capSeed, 10_000, 200_000));
        uint256 budget = city.createBudget(category, validFrom, validUntil, cap, "budget");
        budgets.push(budget);
        budgetEnd[budget] = validUntil;
    }

    function setBudgetCap(uint256 budgetSeed, uint256 capSeed) external tracked("setBudgetCap") {
        city.setBudgetCap(_budget(budgetSeed), uint128(_bound(capSeed, 1, 300_000)));
    }

    function addProvider(uint256 providerSeed, uint256 categorySeed, uint256 maxSeed)
        public
        tracked("addProvider")
    {
        uint128 maxAmount = maxSeed % 4 == 0 ? 0 : uint128(_bound(maxSeed, 100, 10_000));
        city.addProvider(_provider(providerSeed), uint64(categorySeed % 8), maxAmount, "provider");
    }

    function updateProvider(uint256 providerSeed, uint256 categorySeed, uint256 maxSeed)
        external
        tracked("updateProvider")
    {
        uint128 maxAmount = maxSeed % 4 == 0 ? 0 : uint128(_bound(maxSeed, 100, 10_000));
        city.updateProvider(_provider(providerSeed), uint64(categorySeed % 8), maxAmount);
    }

    /// @notice Suspends or reinstates a provider; one call in eight removes it (for good).
    function setProviderStatus(uint256 providerSeed, uint256 statusSeed) external tracked("setProviderStatus") {
        uint256 m = _mix(statusSeed);
        city.setProviderStatus(_provider(providerSeed), uint8(m % 8 == 7 ? 3 : 1 + m % 2));
    }

    function enroll(uint256 slotSeed, uint256 validSeed) external tracked("enroll") {
        uint256 slot = _slotWithStatus(slotSeed, NO_PASS);
        address[] memory holders = new address[](1);
        holders[0] = residentAddr[slot];
        city.enrollPasses(holders, uint40(timestamp + _bound(validSeed, 1 days, 400 days)));
        _newPass(slot);
    }

    function renew(uint256 slotSeed, uint256 validSeed) external tracked("renew") {
        address[] memory holders = new address[](1);
        holders[0] = residentAddr[_slotWithStatus(slotSeed, ACTIVE)];
        city.renewPasses(holders, uint40(timestamp + _bound(validSeed, 1 hours, 400 days)));
    }

    /// @notice Half of the calls do nothing (and revert): suspended passes pay nothing.
    function suspendPass(uint256 slotSeed) external tracked("suspendPass") {
        require(_mix(slotSeed) % 2 == 0, "not this time");
        city.suspendPass(residentAddr[_slotWithStatus(slotSeed, ACTIVE)]);
    }

    function reinstatePass(uint256 slotSeed) external tracked("reinstatePass") {
        city.reinstatePass(residentAddr[_slotWithStatus(slotSeed, SUSPENDED)]);
    }

    /// @notice Three calls in four do nothing (and revert): a revocation is for good.
    function revokePass(uint256 slotSeed) external tracked("revokePass") {
        require(_mix(slotSeed) % 4 == 0, "not this time");
        city.revokePass(residentAddr[_slotWithStatus(slotSeed, ACTIVE)]);
    }

    /// @notice Lost phone: the pass moves to another key, with the budgets in `budgetMask`.
    /// Two calls in three do nothing (and revert): phones are not lost that often.
    function migratePass(uint256 fromSeed, uint256 toSeed, uint256 budgetMask) external tracked("migratePass") {
        require(_mix(toSeed) % 3 == 0, "not this time");
        uint256 from = _slotWithStatus(fromSeed, ACTIVE);
        uint256 to = _slotWithStatus(toSeed, NO_PASS);
        uint256[] memory listed = _budgetList(budgetMask);
        uint256[] memory fromBefore = _balancesOf(residentAddr[from]);
        uint256[] memory toBefore = _balancesOf(residentAddr[to]);
        city.migratePass(residentAddr[from], residentAddr[to], listed);
        if (identity[to] != 0) _violate("migratePass onto an address that already had a pass");
        identity[to] = identity[from];
        _checkMigrated(residentAddr[from], residentAddr[to], listed, fromBefore, toBefore, "migratePass");
    }

    /// @notice Moves the budgets in `budgetMask` left behind on a migrated address.
    function migrateBalances(uint256 fromSeed, uint256 budgetMask) external tracked("migrateBalances") {
        uint256 fromSlot = _slotWithStatus(fromSeed, MIGRATED);
        address from = residentAddr[fromSlot];
        address to = city.currentAddress(from);
        uint256[] memory listed = _budgetList(budgetMask);
        uint256[] memory fromBefore = _balancesOf(from);
        uint256[] memory toBefore = _balancesOf(to);
        city.migrateBalances(from, listed);
        if (slotPlusOne[to] == 0 || identity[slotPlusOne[to] - 1] != identity[fromSlot]) {
            _violate("migrateBalances moved credit to another pass");
        }
        _checkMigrated(from, to, listed, fromBefore, toBefore, "migrateBalances");
    }

    /// @notice Credits up to four residents (a resident may appear twice); one call in eight
    /// reuses the previous batch id, which must be refused.
    function issue(uint256 budgetSeed, uint256 countSeed, uint256 holderSeed, uint256 amountSeed)
        external
        tracked("issue")
    {
        uint256 budget = _budget(budgetSeed);
        uint256 count = 1 + countSeed % 4;
        address[] memory holders = new address[](count);
        uint256[] memory amounts = new uint256[](count);
        for (uint256 i; i < count; ++i) {
            holders[i] = residentAddr[_slotWithStatus(holderSeed >> (8 * i), ACTIVE)];
            amounts[i] = _bound(uint256(keccak256(abi.encode(amountSeed, i))), 1, MAX_ISSUE);
        }
        bool reuse = _mix(countSeed) % 8 == 7 && lastBatchId != bytes32(0);
        bytes32 batchId = reuse ? lastBatchId : keccak256(abi.encode("batch", ++batchCounter));
        uint256[RESIDENTS] memory before = _residentBalances(budget);
        (, uint128 issuedBefore,,,) = city.budgetTotals(budget);
        city.issue(batchId, budget, holders, amounts);
        if (reuse) _violate("issue accepted a batch id twice");
        lastBatchId = batchId;
        _creditIssued(budget, holders, amounts, before, issuedBefore);
    }

    /// @notice Enrols up to three keys and credits them in one call.
    function enrollAndIssue(uint256 budgetSeed, uint256 countSeed, uint256 holderSeed, uint256 amountSeed)
        external
        tracked("enrollAndIssue")
    {
        uint256 count = 1 + countSeed % 3;
        address[] memory holders = new address[](count);
        uint256[] memory amounts = new uint256[](count);
        for (uint256 i; i < count; ++i) {
            holders[i] = residentAddr[_slotWithStatus(holderSeed >> (8 * i), NO_PASS)];
            amounts[i] = _bound(uint256(keccak256(abi.encode(amountSeed, i))), 1, MAX_ISSUE);
        }
        _enrollAndIssue(_budget(budgetSeed), holders, amounts, uint40(timestamp + _bound(countSeed >> 8, 1 days, 400 days)));
    }

    /// @notice An ordinary scan: see _voucher for the shapes it takes.
    function redeem(
        uint256 slotSeed,
        uint256 budgetSeed,
        uint256 providerSeed,
        uint256 maxSeed,
        uint256 amountSeed,
        uint256 nonceSeed,
        uint256 flags
    ) external tracked("redeem") {
        _redeemOne(slotSeed, budgetSeed, providerSeed, maxSeed, amountSeed, nonceSeed, flags, false);
    }

    /// @notice A refundable scan: the chain stores what it debited.
    function redeemRefundable(
        uint256 slotSeed,
        uint256 budgetSeed,
        uint256 providerSeed,
        uint256 maxSeed,
        uint256 amountSeed,
        uint256 nonceSeed,
        uint256 flags
    ) external tracked("redeemRefundable") {
        _redeemOne(slotSeed, budgetSeed, providerSeed, maxSeed, amountSeed, nonceSeed, flags, true);
    }

    /// @notice An offline batch of up to four vouchers, some of which may be skipped.
    function redeemBatch(uint256 countSeed, uint256 seed, uint256 providerSeed) external tracked("redeemBatch") {
        address provider = _provider(providerSeed);
        uint256 count = 1 + countSeed % 4;
        Voucher[] memory vouchers = new Voucher[](count);
        bytes[] memory signatures = new bytes[](count);
        uint256[] memory amounts = new uint256[](count);
        uint256[] memory coPayments = new uint256[](count);
        bool[] memory usedBefore = new bool[](count);
        uint256 kept;
        for (uint256 i; i < count; ++i) {
            uint256 s = uint256(keccak256(abi.encode(seed, i)));
            uint256 budget = _budget(s >> 8);
            (Voucher memory v, bytes memory sig, uint256 amount) = _voucher(
                _slotWithCredit(s, budget), budget, provider, s >> 16, s >> 32, s >> 48, uint256(keccak256(abi.encode(s)))
            );
            bool duplicate;
            for (uint256 j; j < kept; ++j) {
                if (_key(vouchers[j].holder, vouchers[j].budget, vouchers[j].nonce) == _key(v.holder, v.budget, v.nonce)) {
                    duplicate = true;
                }
            }
            if (duplicate) continue; // one redemption per nonce and batch, so its amount is known
            vouchers[kept] = v;
            signatures[kept] = sig;
            amounts[kept] = amount;
            coPayments[kept] = s % 500;
            usedBefore[kept] = city.isNonceUsed(v.holder, v.budget, v.nonce);
            ++kept;
        }
        assembly ("memory-safe") {
            mstore(vouchers, kept)
            mstore(signatures, kept)
            mstore(amounts, kept)
            mstore(coPayments, kept)
        }
        uint256[] memory providerBefore = _balancesOf(provider);
        vm.prank(provider);
        uint256 redeemed = city.redeemBatch(vouchers, signatures, amounts, coPayments);
        uint256[] memory expected = new uint256[](budgets.length);
        uint256 counted;
        for (uint256 i; i < kept; ++i) {
            Voucher memory v = vouchers[i];
            if (usedBefore[i] || !city.isNonceUsed(v.holder, v.budget, v.nonce)) continue;
            ++counted;
            expected[_budgetIndex(v.budget)] += amounts[i];
            _record(v.holder, v.budget, v.nonce, provider, amounts[i], false);
        }
        if (counted != redeemed) _violate("redeemBatch's count differs from the nonces it used");
        uint256[] memory providerAfter = _balancesOf(provider);
        for (uint256 b; b < budgets.length; ++b) {
            if (providerAfter[b] != providerBefore[b] + expected[b]) {
                _violate("redeemBatch paid the provider another amount than the redeemed vouchers'");
            }
        }
        // A batch that redeemed nothing (and did nothing wrong) changed nothing: reverting it
        // lets forge's metrics count those batches.
        if (redeemed == 0 && counted == 0 && bytes(violation).length == 0) revert("the batch redeemed nothing");
    }

    /// @notice A provider returns credit. Usually for a redemption the handler recorded (by
    /// its provider, within what is left), sometimes for any (holder, budget, nonce), by
    /// another provider, or above what is left: those must be refused.
    function refund(uint256 pickSeed, uint256 amountSeed, uint256 flags) external tracked("refund") {
        flags = _mix(flags);
        address holder;
        uint256 budget;
        uint256 nonce;
        address provider;
        uint256 remaining;
        if (redemptions.length != 0 && flags % 8 != 0) {
            Redemption storage r = redemptions[_refundablePick(pickSeed)];
            (holder, budget, nonce, provider) = (r.holder, r.budget, r.nonce, r.provider);
            remaining = r.refundable && r.amount > r.refunded ? r.amount - r.refunded : 0;
        } else {
            holder = residentAddr[pickSeed % RESIDENTS];
            budget = _budget(pickSeed >> 8);
            nonce = (pickSeed >> 16) % 16;
            provider = _provider(pickSeed >> 24);
        }
        if ((flags >> 3) % 8 == 0) provider = _provider(flags >> 6);
        uint256 amount = (flags >> 12) % 6 == 0 ? remaining + 1 : _bound(amountSeed, 1, remaining == 0 ? 1 : remaining);
        address to = city.currentAddress(holder);
        uint256 providerBefore = city.balanceOf(provider, budget);
        uint256 toBefore = city.balanceOf(to, budget);
        vm.prank(provider);
        city.refund(holder, budget, nonce, amount);

        uint256 index = redemptionPlusOne[_key(holder, budget, nonce)];
        if (index == 0) {
            _violate("refund of a redemption that never happened");
            return;
        }
        Redemption storage red = redemptions[index - 1];
        red.refunded += amount; // checkRefunds compares it with what the redemption debited
        if (provider != red.provider) _violate("refund by a provider that did not make the redemption");
        if (city.balanceOf(provider, budget) + amount != providerBefore || city.balanceOf(to, budget) != toBefore + amount)
        {
            _violate("refund moved another amount than asked");
        }
        if (slotPlusOne[to] == 0 || identity[slotPlusOne[to] - 1] != _identityOf(holder)) {
            _violate("refund credited another pass than the redemption's");
        }
        accountOf[_identityOf(holder)][budget].refunded += amount;
    }

    /// @notice The issuer takes back credit issued in error: usually within the balance,
    /// sometimes one cent above it (must be refused).
    /// One call in eight aims at a provider's credit, which is no issuance error (refused).
    function correct(uint256 slotSeed, uint256 budgetSeed, uint256 amountSeed) external tracked("correct") {
        uint256 budget = _budget(budgetSeed);
        uint256 slot = _slotWithCredit(slotSeed, budget);
        bool atProvider = _mix(slotSeed) % 8 == 7;
        address holder = atProvider ? _providerWithCredit(slotSeed >> 8, budget) : residentAddr[slot];
        uint256 balance = city.balanceOf(holder, budget);
        uint256 amount = _mix(amountSeed) % 6 == 5 ? balance + 1 : _bound(amountSeed, 1, balance == 0 ? 1 : balance);
        city.correct(holder, budget, amount, "issued in error");
        if (atProvider) _violate("correct took a provider's credit");
        if (city.balanceOf(holder, budget) + amount != balance) _violate("correct took another amount than asked");
        if (!atProvider) accountOf[identity[slot]][budget].corrected += amount;
        totalsOf[budget].corrected += amount;
    }

    /// @notice Pays a provider for the budgets in `budgetMask`: usually within its balance;
    /// sometimes one cent above it or with a reference already used (both must be refused).
    function settle(uint256 providerSeed, uint256 budgetMask, uint256 amountSeed, uint256 flags)
        external
        tracked("settle")
    {
        uint256[] memory listed = _budgetList(budgetMask);
        address provider = _providerWithCredit(providerSeed, listed[0]);
        uint256[] memory amounts = new uint256[](listed.length);
        uint256[] memory before = new uint256[](listed.length);
        for (uint256 i; i < listed.length; ++i) {
            before[i] = city.balanceOf(provider, listed[i]);
            uint256 s = uint256(keccak256(abi.encode(amountSeed, i)));
            amounts[i] = s % 10 == 0 ? before[i] + 1 : _bound(s >> 8, 1, before[i] == 0 ? 1 : before[i]);
        }
        bool reuse = _mix(flags) % 8 == 7 && referenceCounter != 0;
        string memory ref = string.concat("SEPA-", _str(reuse ? referenceCounter : ++referenceCounter));
        city.settle(provider, listed, amounts, ref);
        if (reuse) _violate("settle accepted a payment reference twice");
        for (uint256 i; i < listed.length; ++i) {
            if (city.balanceOf(provider, listed[i]) + amounts[i] != before[i]) {
                _violate("settle burned another amount than asked");
            }
            totalsOf[listed[i]].settled += amounts[i];
        }
    }

    /// @notice After a budget's end, burns what every resident address has left (a provider
    /// is listed too: its credit must stay).
    function reclaim(uint256 budgetSeed, uint256 providerSeed) external tracked("reclaim") {
        uint256 budget = _budget(budgetSeed);
        address provider = _provider(providerSeed);
        address[] memory holders = new address[](RESIDENTS + 1);
        for (uint256 i; i < RESIDENTS; ++i) {
            holders[i] = residentAddr[i];
        }
        holders[RESIDENTS] = provider;
        uint256[RESIDENTS] memory before = _residentBalances(budget);
        uint256 providerBefore = city.balanceOf(provider, budget);
        city.reclaim(budget, holders);
        for (uint256 i; i < RESIDENTS; ++i) {
            if (city.balanceOf(residentAddr[i], budget) != 0) _violate("reclaim left credit with a resident");
            accountOf[identity[i]][budget].reclaimed += before[i];
            totalsOf[budget].reclaimed += before[i];
        }
        if (city.balanceOf(provider, budget) != providerBefore) _violate("reclaim took a provider's credit");
    }

    /// @notice ERC-1155 transfers between any two actors: only resident => provider (a
    /// payment) may succeed.
    function transfer(uint256 fromSeed, uint256 toSeed, uint256 budgetSeed, uint256 amountSeed)
        external
        tracked("transfer")
    {
        uint256 budget = _budget(budgetSeed);
        bool payment = _mix(fromSeed) % 2 == 0; // else any two actors
        address from = payment ? residentAddr[_slotWithCredit(fromSeed, budget)] : _actor(fromSeed);
        address to = payment ? _providerFor(toSeed, budget) : _actor(toSeed);
        uint256 fromBefore = city.balanceOf(from, budget);
        uint256 toBefore = city.balanceOf(to, budget);
        uint256 amount = _bound(amountSeed, 1, fromBefore == 0 ? 1 : fromBefore);
        vm.prank(from);
        city.safeTransferFrom(from, to, budget, amount, "");
        if (slotPlusOne[from] == 0 || slotPlusOne[to] != 0) {
            _violate("an ERC-1155 transfer other than resident => provider succeeded");
        }
        if (from != to && (city.balanceOf(from, budget) + amount != fromBefore || city.balanceOf(to, budget) != toBefore + amount))
        {
            _violate("transfer moved another amount than asked");
        }
        if (slotPlusOne[from] != 0) accountOf[identity[slotPlusOne[from] - 1]][budget].spent += amount;
    }

    /// @notice Two calls in three do nothing (and revert), so the system is paused about a
    /// quarter of the time rather than half.
    function pause(uint256 seed) external tracked("pause") {
        require(_mix(seed) % 3 == 0, "not this time");
        city.pause();
    }

    function unpause() external tracked("unpause") {
        city.unpause();
    }

    function warp(uint256 secondsSeed) external tracked("warp") {
        timestamp += _bound(secondsSeed, 1 minutes, 1 days);
    }

    /// @notice Jumps to just after a budget's end (so reclaim and the end-of-budget rules
    /// run); seven calls in eight do nothing (and revert), or budgets would rarely live long.
    function warpPastEnd(uint256 budgetSeed, uint256 secondsSeed) external tracked("warpPastEnd") {
        require(_mix(secondsSeed) % 8 == 0, "not this time");
        uint256 end = budgetEnd[_budget(budgetSeed)];
        if (end >= timestamp) timestamp = end + _bound(secondsSeed, 1, 1 days);
    }

    // ------------------------------------------------------------------ the invariants
    /// @notice issued = held by residents + held by providers + settled + reclaimed +
    /// corrected, per budget; issued <= cap; the totals are those the handler's calls made.
    function checkConservation() external view {
        for (uint256 b; b < budgets.length; ++b) {
            uint256 budget = budgets[b];
            (uint128 cap, uint128 issued, uint128 settled, uint128 reclaimed, uint128 corrected) =
                city.budgetTotals(budget);
            uint256 held;
            for (uint256 i; i < RESIDENTS; ++i) {
                held += city.balanceOf(residentAddr[i], budget);
            }
            for (uint256 p; p < PROVIDERS; ++p) {
                held += city.balanceOf(providerAddr[p], budget);
            }
            require(uint256(issued) == held + settled + reclaimed + corrected, string.concat("conservation broken in budget #", _str(b)));
            require(issued <= cap, "issued above the cap");
            Totals memory t = totalsOf[budget];
            require(
                t.issued == issued && t.settled == settled && t.reclaimed == reclaimed && t.corrected == corrected,
                string.concat("budgetTotals differ from what the calls did, budget #", _str(b))
            );
        }
    }

    /// @notice Every nonce a redemption used stays used, each was redeemed once, and the hot
    /// nonce bitmaps hold exactly the nonces redemptions used (nothing else uses one).
    function checkNonces() external view {
        for (uint256 i; i < redemptions.length; ++i) {
            Redemption storage r = redemptions[i];
            require(city.isNonceUsed(r.holder, r.budget, r.nonce), "a used nonce became unused");
            require(timesRedeemed[_key(r.holder, r.budget, r.nonce)] == 1, "a nonce was redeemed twice");
        }
        for (uint256 i; i < RESIDENTS; ++i) {
            for (uint256 b; b < budgets.length; ++b) {
                require(
                    city.hotNonces(residentAddr[i], budgets[b]) == usedHotNonces[residentAddr[i]][budgets[b]],
                    "hot nonces differ from the redemptions made"
                );
            }
        }
    }

    /// @notice Refunds of a redemption never add up to more than it debited, only
    /// refundable redemptions can be refunded, and refundableOf reports what is left.
    function checkRefunds() external view {
        for (uint256 i; i < redemptions.length; ++i) {
            Redemption storage r = redemptions[i];
            uint256 limit = r.refundable ? r.amount : 0;
            require(r.refunded <= limit, "refunds exceed what the redemption debited");
            (address provider, uint256 remaining) = city.refundableOf(r.holder, r.budget, r.nonce);
            if (r.refundable) {
                require(provider == r.provider && remaining == r.amount - r.refunded, "refundableOf is wrong");
            } else {
                require(provider == address(0) && remaining == 0, "an ordinary scan is refundable");
            }
        }
    }

    /// @notice No resident holds more of a budget than was issued to them, minus what they
    /// spent, plus refunds of their own refundable redemptions (all addresses of a pass
    /// together); with corrections and reclaims it is exact. An address that never had a
    /// pass holds nothing.
    function checkResidentBound() external view {
        for (uint256 b; b < budgets.length; ++b) {
            uint256 budget = budgets[b];
            uint256[RESIDENTS + 1] memory held;
            for (uint256 i; i < RESIDENTS; ++i) {
                held[identity[i]] += city.balanceOf(residentAddr[i], budget);
            }
            require(held[0] == 0, "an address without a pass holds credit");
            for (uint256 id = 1; id <= RESIDENTS; ++id) {
                Account memory a = accountOf[id][budget];
                require(held[id] + a.spent <= a.issued + a.refunded, "a resident holds more than issued - spent + own refunds");
                require(
                    held[id] + a.spent + a.corrected + a.reclaimed == a.issued + a.refunded,
                    "a resident's credit differs from issued - spent + refunds - corrected - reclaimed"
                );
            }
        }
    }

    /// @notice No call made while paused moved credit.
    function checkPause() external view {
        require(bytes(pauseViolation).length == 0, pauseViolation);
    }

    /// @notice No successful call did something other than what it asked.
    function checkEffects() external view {
        require(bytes(violation).length == 0, violation);
    }

    /// @notice Pause and unpause both still work within PAUSE_GAS (tried and undone).
    function checkPauseStaysPossible() external {
        bool wasPaused = city.paused();
        bytes memory pauseCall = abi.encodeCall(ICityPass.pause, ());
        bytes memory unpauseCall = abi.encodeCall(ICityPass.unpause, ());
        (bool first,) = address(city).call{gas: PAUSE_GAS}(wasPaused ? unpauseCall : pauseCall);
        (bool second,) = address(city).call{gas: PAUSE_GAS}(wasPaused ? pauseCall : unpauseCall);
        require(first && second && city.paused() == wasPaused, "pause or unpause no longer fits PAUSE_GAS");
    }

    /// @notice The actions the fuzzer may call (everything else here is set-up or a check).
    function actions() external pure returns (bytes4[] memory s) {
        s = new bytes4[](26);
        s[0] = this.createBudget.selector;
        s[1] = this.setBudgetCap.selector;
        s[2] = this.addProvider.selector;
        s[3] = this.updateProvider.selector;
        s[4] = this.setProviderStatus.selector;
        s[5] = this.enroll.selector;
        s[6] = this.renew.selector;
        s[7] = this.suspendPass.selector;
        s[8] = this.reinstatePass.selector;
        s[9] = this.revokePass.selector;
        s[10] = this.migratePass.selector;
        s[11] = this.migrateBalances.selector;
        s[12] = this.issue.selector;
        s[13] = this.enrollAndIssue.selector;
        s[14] = this.redeem.selector;
        s[15] = this.redeemRefundable.selector;
        s[16] = this.redeemBatch.selector;
        s[17] = this.refund.selector;
        s[18] = this.correct.selector;
        s[19] = this.settle.selector;
        s[20] = this.reclaim.selector;
        s[21] = this.transfer.selector;
        s[22] = this.pause.selector;
        s[23] = this.unpause.selector;
        s[24] = this.warp.selector;
        s[25] = this.warpPastEnd.selector;
    }

    function redemptionCount() external view returns (uint256) {
        return redemptions.length;
    }

    // ------------------------------------------------------------------ internals
    function _redeemOne(
        uint256 slotSeed,
        uint256 budgetSeed,
        uint256 providerSeed,
        uint256 maxSeed,
        uint256 amountSeed,
        uint256 nonceSeed,
        uint256 flags,
        bool refundable
    ) internal {
        uint256 budget = _budget(budgetSeed);
        address provider = _providerFor(providerSeed, budget);
        (Voucher memory v, bytes memory sig, uint256 amount) =
            _voucher(_slotWithCredit(slotSeed, budget), budget, provider, maxSeed, amountSeed, nonceSeed, flags);
        uint256 holderBefore = city.balanceOf(v.holder, v.budget);
        uint256 providerBefore = city.balanceOf(provider, v.budget);
        vm.prank(provider);
        if (refundable) city.redeemRefundable(v, sig, amount, amountSeed % 1_000);
        else city.redeem(v, sig, amount, amountSeed % 1_000);
        if (city.balanceOf(v.holder, v.budget) + amount != holderBefore || city.balanceOf(provider, v.budget) != providerBefore + amount)
        {
            _violate("redeem moved another amount than typed");
        }
        if (amount == 0 || amount > v.maxAmount) _violate("redeem accepted an amount outside 1..maxAmount");
        if (v.provider != address(0) && v.provider != provider) _violate("redeem by a provider the voucher does not name");
        if (v.deadline < timestamp) _violate("redeem accepted an expired voucher");
        _record(v.holder, v.budget, v.nonce, provider, amount, refundable);
    }

    /// @dev A voucher of resident `slot`, mostly valid (for any provider or naming this one,
    /// in the 65- or the 64-byte form); `flags` picks the odd ones: naming another provider,
    /// a foreign signer, an expired deadline, an amount of 0 or above maxAmount. One nonce in
    /// sixteen replays a redemption already made (with a fresh signature, so a new digest).
    function _voucher(
        uint256 slot,
        uint256 budget,
        address provider,
        uint256 maxSeed,
        uint256 amountSeed,
        uint256 nonceSeed,
        uint256 flags
    ) internal view returns (Voucher memory v, bytes memory sig, uint256 amount) {
        flags = _mix(flags);
        nonceSeed = _mix(nonceSeed);
        v.holder = residentAddr[slot];
        v.budget = budget;
        if (nonceSeed % 16 == 0 && redemptions.length != 0) {
            Redemption storage r = redemptions[(nonceSeed >> 4) % redemptions.length];
            (v.holder, v.budget, v.nonce) = (r.holder, r.budget, r.nonce);
            slot = slotPlusOne[r.holder] - 1;
        } else if (nonceSeed % 16 < 12) {
            v.nonce = (nonceSeed >> 4) % 32; // hot nonces, often reused across budgets
        } else {
            v.nonce = 128 + (nonceSeed >> 4) % 600; // cold nonces, across two bitmap words
        }
        // One voucher in about six is wrong in one way (odd = 0..4), and must be refused.
        uint256 odd = flags % 32;
        v.provider = odd == 0 ? _otherProvider(provider) : odd < 12 ? provider : address(0);
        v.maxAmount = _bound(maxSeed, 1, MAX_VOUCHER);
        v.deadline = odd == 1 ? timestamp - 1 : timestamp + _bound(flags >> 8, 0, 1 days);
        uint256 key = odd == 2 ? residentKey[(slot + 1) % RESIDENTS] : residentKey[slot];
        sig = _sign(key, v, (flags >> 5) % 2 == 0);
        // Mostly within the holder's credit too (a till types what the purchase costs).
        uint256 balance = city.balanceOf(v.holder, v.budget);
        uint256 most = (flags >> 6) % 8 == 0 || balance == 0 || balance > v.maxAmount ? v.maxAmount : balance;
        amount = odd == 3 ? v.maxAmount + 1 : odd == 4 ? 0 : _bound(amountSeed, 1, most);
    }

    function _sign(uint256 key, Voucher memory v, bool full) internal view returns (bytes memory) {
        bytes32 structHash =
            keccak256(abi.encode(VOUCHER_TYPEHASH, v.holder, v.provider, v.budget, v.maxAmount, v.nonce, v.deadline));
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", city.domainSeparator(), structHash));
        (uint8 yParity, bytes32 r, bytes32 s) = vm.sign(key, digest);
        if (full) return abi.encodePacked(r, s, yParity);
        return abi.encodePacked(r, bytes32(uint256(s) | (uint256(yParity - 27) << 255))); // EIP-2098
    }

    function _record(address holder, uint256 budget, uint256 nonce, address provider, uint256 amount, bool refundable)
        internal
    {
        bytes32 key = _key(holder, budget, nonce);
        timesRedeemed[key] += 1;
        redemptions.push(Redemption(holder, budget, nonce, provider, amount, refundable, 0));
        redemptionPlusOne[key] = redemptions.length;
        if (nonce < 128) usedHotNonces[holder][budget] |= uint256(1) << nonce;
        accountOf[_identityOf(holder)][budget].spent += amount;
    }

    function _enrollAndIssue(uint256 budget, address[] memory holders, uint256[] memory amounts, uint40 validUntil)
        internal
    {
        bytes32 batchId = keccak256(abi.encode("batch", ++batchCounter));
        uint256[RESIDENTS] memory before = _residentBalances(budget);
        (, uint128 issuedBefore,,,) = city.budgetTotals(budget);
        city.enrollAndIssue(batchId, budget, validUntil, holders, amounts);
        for (uint256 i; i < holders.length; ++i) {
            uint256 slot = slotPlusOne[holders[i]] - 1;
            if (identity[slot] == 0) _newPass(slot);
            else _violate("enrollAndIssue enrolled an address that already had a pass");
        }
        lastBatchId = batchId;
        _creditIssued(budget, holders, amounts, before, issuedBefore);
    }

    /// @dev Records an issuance and checks it credited each listed resident exactly its
    /// amounts (handler residents are EOAs: none may be skipped).
    function _creditIssued(
        uint256 budget,
        address[] memory holders,
        uint256[] memory amounts,
        uint256[RESIDENTS] memory before,
        uint128 issuedBefore
    ) internal {
        uint256[RESIDENTS] memory expected;
        uint256 total;
        for (uint256 i; i < holders.length; ++i) {
            uint256 slot = slotPlusOne[holders[i]] - 1;
            expected[slot] += amounts[i];
            total += amounts[i];
            accountOf[identity[slot]][budget].issued += amounts[i];
        }
        for (uint256 i; i < RESIDENTS; ++i) {
            if (city.balanceOf(residentAddr[i], budget) != before[i] + expected[i]) {
                _violate("issue credited another amount than listed");
            }
        }
        (, uint128 issuedAfter,,,) = city.budgetTotals(budget);
        if (issuedAfter != issuedBefore + total) _violate("issue counted another total than it credited");
        totalsOf[budget].issued += total;
    }

    function _checkMigrated(
        address from,
        address to,
        uint256[] memory listed,
        uint256[] memory fromBefore,
        uint256[] memory toBefore,
        string memory name
    ) internal {
        uint256[] memory fromAfter = _balancesOf(from);
        uint256[] memory toAfter = _balancesOf(to);
        for (uint256 b; b < budgets.length; ++b) {
            bool isListed;
            for (uint256 j; j < listed.length; ++j) {
                if (listed[j] == budgets[b]) isListed = true;
            }
            bool ok = isListed
                ? fromAfter[b] == 0 && toAfter[b] == toBefore[b] + fromBefore[b]
                : fromAfter[b] == fromBefore[b] && toAfter[b] == toBefore[b];
            if (!ok) _violate(string.concat(name, " moved other balances than the budgets listed"));
        }
    }

    function _newPass(uint256 slot) internal {
        if (identity[slot] != 0) _violate("an address was enrolled twice");
        identity[slot] = slot + 1;
    }

    function _identityOf(address holder) internal view returns (uint256) {
        uint256 s = slotPlusOne[holder];
        return s == 0 ? 0 : identity[s - 1];
    }

    function _violate(string memory what) internal {
        if (bytes(violation).length == 0) violation = what;
    }

    /// @dev A hash of every balance and every credit total (not the cap) of the first `count`
    /// budgets: equal before and after a call made while paused, or credit moved.
    function _snapshot(uint256 count) internal view returns (bytes32 h) {
        for (uint256 b; b < count; ++b) {
            uint256 budget = budgets[b];
            (, uint128 issued, uint128 settled, uint128 reclaimed, uint128 corrected) = city.budgetTotals(budget);
            h = keccak256(abi.encode(h, issued, settled, reclaimed, corrected));
            for (uint256 i; i < RESIDENTS; ++i) {
                h = keccak256(abi.encode(h, city.balanceOf(residentAddr[i], budget)));
            }
            for (uint256 p; p < PROVIDERS; ++p) {
                h = keccak256(abi.encode(h, city.balanceOf(providerAddr[p], budget)));
            }
        }
    }

    function _residentBalances(uint256 budget) internal view returns (uint256[RESIDENTS] memory out) {
        for (uint256 i; i < RESIDENTS; ++i) {
            out[i] = city.balanceOf(residentAddr[i], budget);
        }
    }

    function _balancesOf(address account) internal view returns (uint256[] memory out) {
        out = new uint256[](budgets.length);
        for (uint256 b; b < budgets.length; ++b) {
            out[b] = city.balanceOf(account, budgets[b]);
        }
    }

    /// @dev The budgets whose bit is set in `mask` (at least one: the first if none).
    function _budgetList(uint256 mask) internal view returns (uint256[] memory list) {
        uint256 n = budgets.length;
        list = new uint256[](n);
        uint256 count;
        for (uint256 b; b < n; ++b) {
            if (mask & (1 << b) != 0) list[count++] = budgets[b];
        }
        if (count == 0 && n != 0) list[count++] = budgets[mask % n];
        assembly ("memory-safe") {
            mstore(list, count)
        }
    }

    function _budget(uint256 seed) internal view returns (uint256) {
        require(budgets.length != 0, "no budget yet");
        return budgets[seed % budgets.length];
    }

    function _budgetIndex(uint256 budget) internal view returns (uint256) {
        for (uint256 b; b < budgets.length; ++b) {
            if (budgets[b] == budget) return b;
        }
        revert("unknown budget");
    }

    function _provider(uint256 seed) internal view returns (address) {
        return providerAddr[seed % PROVIDERS];
    }

    function _otherProvider(address provider) internal view returns (address) {
        for (uint256 p; p < PROVIDERS; ++p) {
            if (providerAddr[p] == provider) return providerAddr[(p + 1) % PROVIDERS];
        }
        revert("not a provider of the pool");
    }

    /// @dev Seven times in eight, the first resident slot from `seed` on whose pass has
    /// `status` (if any); else any slot.
    function _slotWithStatus(uint256 seed, uint8 status) internal view returns (uint256) {
        uint256 start = seed % RESIDENTS;
        if (_mix(seed) % 8 == 7) return start;
        for (uint256 k; k < RESIDENTS; ++k) {
            uint256 slot = (start + k) % RESIDENTS;
            (uint8 s,) = city.passOf(residentAddr[slot]);
            if (s == status) return slot;
        }
        return start;
    }

    /// @dev Seven times in eight, the first resident slot from `seed` on with credit of
    /// `budget` on an active pass (else with credit at all).
    function _slotWithCredit(uint256 seed, uint256 budget) internal view returns (uint256) {
        uint256 start = seed % RESIDENTS;
        if (_mix(seed) % 8 == 7) return start;
        uint256 withCredit = start;
        for (uint256 k; k < RESIDENTS; ++k) {
            uint256 slot = (start + k) % RESIDENTS;
            if (city.balanceOf(residentAddr[slot], budget) == 0) continue;
            (uint8 status,) = city.passOf(residentAddr[slot]);
            if (status == ACTIVE) return slot;
            if (withCredit == start) withCredit = slot;
        }
        return withCredit;
    }

    /// @dev Seven times in eight, the first active provider from `seed` on approved for `budget`'s category.
    function _providerFor(uint256 seed, uint256 budget) internal view returns (address) {
        uint256 start = seed % PROVIDERS;
        if (_mix(seed) % 8 == 7) return providerAddr[start];
        uint64 bit = uint64(1) << uint8(budget >> 80); // BudgetId: the category at bits 80..87
        for (uint256 k; k < PROVIDERS; ++k) {
            address p = providerAddr[(start + k) % PROVIDERS];
            (uint8 status, uint64 categories,) = city.providerOf(p);
            if (status == 1 && categories & bit != 0) return p;
        }
        return providerAddr[start];
    }

    /// @dev Seven times in eight, the first provider from `seed` on with credit of `budget`.
    function _providerWithCredit(uint256 seed, uint256 budget) internal view returns (address) {
        uint256 start = seed % PROVIDERS;
        if (_mix(seed) % 8 == 7) return providerAddr[start];
        for (uint256 k; k < PROVIDERS; ++k) {
            address p = providerAddr[(start + k) % PROVIDERS];
            if (city.balanceOf(p, budget) != 0) return p;
        }
        return providerAddr[start];
    }

    /// @dev Three times in four, a refundable redemption with something left (if any); else any.
    function _refundablePick(uint256 seed) internal view returns (uint256) {
        uint256 n = redemptions.length;
        uint256 start = seed % n;
        if (_mix(seed) % 4 == 3) return start;
        for (uint256 k; k < n; ++k) {
            Redemption storage r = redemptions[(start + k) % n];
            if (r.refundable && r.refunded < r.amount) return (start + k) % n;
        }
        return start;
    }

    /// @dev A resident address or a provider.
    function _actor(uint256 seed) internal view returns (address) {
        uint256 i = seed % (RESIDENTS + PROVIDERS);
        return i < RESIDENTS ? residentAddr[i] : providerAddr[i - RESIDENTS];
    }

    function _key(address holder, uint256 budget, uint256 nonce) internal pure returns (bytes32) {
        return keccak256(abi.encode(holder, budget, nonce));
    }

    /// @dev Spreads a fuzzer word over all values: forge often sends 0 and small numbers, which
    /// must not always pick the same odd case.
    function _mix(uint256 x) internal pure returns (uint256) {
        return uint256(keccak256(abi.encode(x, "mix")));
    }

    function _bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        return lo + x % (hi - lo + 1);
    }

    function _str(uint256 n) internal pure returns (string memory) {
        if (n == 0) return "0";
        bytes memory b;
        while (n != 0) {
            b = abi.encodePacked(bytes1(uint8(48 + n % 10)), b);
            n /= 10;
        }
        return string(b);
    }
}
