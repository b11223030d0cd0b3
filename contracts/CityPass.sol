// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {ERC1155Utils} from "@openzeppelin/contracts/token/ERC1155/utils/ERC1155Utils.sol";

import {RestrictedERC1155} from "./token/RestrictedERC1155.sol";
import {BudgetId} from "./libraries/BudgetId.sol";
import {Voucher, VoucherHash} from "./libraries/VoucherHash.sol";

/// @title CityPass
/// @notice A municipal city pass as restricted, category-bound credit. Each budget (one
/// category for one period, e.g. "Sport 2026") is an ERC-1155 id; amounts are euro cents.
/// Credit only moves from a pass holder to a provider approved for the budget's category,
/// inside the budget's window, while pass and provider are active and the system is not
/// paused; every balance change is checked in one place, `_checkMove`.
/// @dev No personal data is stored or emitted: passes are addresses only.
contract CityPass is RestrictedERC1155, AccessControlDefaultAdminRules, EIP712 {
    using BudgetId for uint256;

    // ------------------------------------------------------------------ roles
    bytes32 public constant BUDGET_MANAGER_ROLE = keccak256("BUDGET_MANAGER_ROLE");
    bytes32 public constant PROVIDER_MANAGER_ROLE = keccak256("PROVIDER_MANAGER_ROLE");
    bytes32 public constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");
    bytes32 public constant ISSUER_ROLE = keccak256("ISSUER_ROLE");
    bytes32 public constant TREASURER_ROLE = keccak256("TREASURER_ROLE");
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");

    // ------------------------------------------------------------------ types
    enum PassStatus {
        None,
        Active,
        Suspended,
        Revoked,
        Migrated,
        Provider // not a pass: the address is a provider's (set by addProvider), so enrolment,
        // which must find an empty slot, can never give a provider a pass
    }

    enum ProviderStatus {
        None,
        Active,
        Suspended,
        Removed
    }

    /// @notice Why a credit move or a voucher is refused. `checkVoucher` returns it, the
    /// hook reverts with it, a batch redemption emits it for every skipped voucher.
    enum Reason {
        Ok,
        Paused,
        BudgetNotStarted,
        BudgetEnded,
        BudgetNotEnded,
        NoPass,
        PassSuspended,
        PassRevoked,
        PassMigrated,
        PassExpired,
        NotAProvider,
        ProviderSuspended,
        ProviderRemoved,
        CategoryNotApproved,
        AboveProviderLimit,
        InsufficientCredit,
        ZeroAmount,
        VoucherExpired,
        NonceUsed,
        BadSignature,
        TransferNotAllowed
    }

    /// @dev One slot per pass: everything the eligibility check reads.
    struct Pass {
        PassStatus status;
        uint40 validUntil; // unix seconds, inclusive; eligibility is re-assessed yearly
    }

    /// @dev One slot per provider: everything a payment to it checks. `paused` mirrors the
    /// global pause flag (see `pause`), so the hot path needs no extra storage read.
    struct Provider {
        ProviderStatus status;
        bool paused;
        uint64 categories; // bit c set = approved for category c
        uint128 maxAmount; // per redemption/transfer, euro cents; 0 = no limit
    }

    /// @dev Per-budget accounting; the terms (category, window) live in the id itself.
    struct BudgetTotals {
        uint128 cap; // the council's appropriation; > 0 for every created budget
        uint128 issued;
        uint128 settled;
        uint128 reclaimed;
    }

    /// @notice Voucher nonces are unordered and counted per (holder, budget). Nonces below
    /// HOT_NONCES are flags in the holder's ledger slot for that budget, which the redemption
    /// writes anyway; higher ones use `nonceBitmap`.
    uint256 public constant HOT_NONCES = 128;
    uint256 public constant MAX_PASSES_PER_BATCH = 2_000;

    // ------------------------------------------------------------------ storage
    mapping(address holder => Pass) public passOf;
    /// @notice Permit2-style bitmap for nonces >= HOT_NONCES: bit n & 255 of word n >> 8,
    /// where n = nonce - HOT_NONCES.
    mapping(address holder => mapping(uint256 budget => mapping(uint256 wordPos => uint256))) public nonceBitmap;
    /// @notice Where a migrated pass went (lost phone): old address => new address.
    mapping(address holder => address) public migratedTo;
    mapping(address provider => Provider) public providerOf;
    mapping(uint256 budget => BudgetTotals) public budgetTotals;
    /// @notice Issuance batch ids already used: a batch can never be issued twice.
    mapping(bytes32 batchId => bool) public batchIssued;
    /// @notice Euro cents refunded so far per redeemed voucher (keyed by its EIP-712 digest).
    mapping(bytes32 voucherDigest => uint256) public refunded;
    /// @notice Settlement payment references already used.
    mapping(bytes32 paymentReference => bool) public referenceSettled;

    address[] private _providers;
    uint256[] private _budgets;
    bool public paused;

    // ------------------------------------------------------------------ events
    event CategoryDefined(uint8 indexed category, string name);
    event BudgetCreated(
        uint256 indexed budget, uint8 indexed category, uint40 validFrom, uint40 validUntil, uint128 cap, string name
    );
    event BudgetCapChanged(uint256 indexed budget, uint128 oldCap, uint128 newCap);
    event ProviderRegistered(address indexed provider, uint64 categories, uint128 maxAmount);
    event ProviderStatusChanged(address indexed provider, ProviderStatus status);
    event PassEnrolled(address indexed holder, uint40 validUntil);
    /// @notice Passes created by `enrollAndIssue`; their addresses are the recipients of the
    /// mint (`TransferSingle` from address 0) events of the same transaction.
    event PassesEnrolled(bytes32 indexed batchId, uint40 validUntil, uint256 count);
    event PassRenewed(address indexed holder, uint40 validUntil);
    event PassStatusChanged(address indexed holder, PassStatus status);
    event PassMigrated(address indexed from, address indexed to);
    event BatchIssued(bytes32 indexed batchId, uint256 indexed budget, uint256 count, uint256 total);
    /// @notice Follows the `TransferSingle` (holder => provider) of the same redemption.
    event Redeemed(address indexed holder, uint256 nonce, uint256 coPayment);
    event VoucherSkipped(address indexed holder, uint256 indexed budget, uint256 nonce, Reason reason);
    event Refunded(address indexed holder, address indexed provider, uint256 indexed budget, uint256 amount, uint256 redemptionNonce);
    event Reclaimed(uint256 indexed budget, uint256 holders, uint256 total);
    event Settled(address indexed provider, uint256 indexed budget, bytes32 indexed paymentReference, uint256 amount);
    event PauseChanged(bool paused, address indexed account);

    // ------------------------------------------------------------------ errors
    error CreditMoveRefused(Reason reason, address from, address to, uint256 budget);
    error VoucherExpired(uint256 deadline);
    error VoucherNonceUsed(address holder, uint256 budget, uint256 nonce);
    error InvalidVoucherSignature(address holder);
    error ZeroAmount();
    error ZeroAddress();
    error LengthMismatch(uint256 holders, uint256 amounts);
    error BatchTooLarge(uint256 size, uint256 max);
    error BatchAlreadyIssued(bytes32 batchId);
    error UnknownBudget(uint256 budget);
    error BudgetClosed(uint256 budget, uint40 validUntil);
    error BudgetNotEnded(uint256 budget, uint40 validUntil);
    error BudgetCapExceeded(uint256 budget, uint256 cap, uint256 wouldBeIssued);
    error InvalidBudgetTerms(uint8 category, uint40 validFrom, uint40 validUntil, uint128 cap);
    error CapBelowIssued(uint256 budget, uint128 cap, uint128 issued);
    error InvalidCategory(uint8 category);
    error PassExists(address holder);
    error AddressIsProvider(address account);
    error AddressHasPass(address account);
    error PassNotActive(address holder, PassStatus status);
    error PassNotSuspended(address holder, PassStatus status);
    error InvalidValidity(uint40 validUntil);
    error ProviderExists(address provider);
    error UnknownProvider(address provider);
    error ProviderStatusUnchanged(address provider, ProviderStatus status);
    error UnknownRedemption(address holder, uint256 budget, uint256 nonce);
    error RefundExceedsRedemption(bytes32 voucherDigest, uint256 redeemed, uint256 wouldBeRefunded);
    error EmptySettlement();
    error ReferenceAlreadySettled(bytes32 paymentReference);
    error SystemPaused();
    error PauseUnchanged(bool paused);

    // ------------------------------------------------------------------ set-up
    /// @param adminDelay Delay (seconds) of the two-step admin transfer.
    /// @param admin Default admin (ideally a multisig); grants and revokes the other roles.
    /// @param operators Initial holders of the budget manager, provider manager, registrar,
    /// issuer, treasurer and pauser roles, in that order; address(0) leaves a role empty.
    /// @param metadataUri ERC-1155 metadata URI template.
    constructor(uint48 adminDelay, address admin, address[6] memory operators, string memory metadataUri)
        RestrictedERC1155(metadataUri)
        AccessControlDefaultAdminRules(adminDelay, admin)
        EIP712("CityPass", "1")
    {
        bytes32[6] memory roles =
            [BUDGET_MANAGER_ROLE, PROVIDER_MANAGER_ROLE, REGISTRAR_ROLE, ISSUER_ROLE, TREASURER_ROLE, PAUSER_ROLE];
        for (uint256 i; i < 6; ++i) {
            if (operators[i] != address(0)) _grantRole(roles[i], operators[i]);
        }
    }

    /// @inheritdoc RestrictedERC1155
    function supportsInterface(bytes4 interfaceId)
        public
        view
        override(RestrictedERC1155, AccessControlDefaultAdminRules)
        returns (bool)
    {
        return RestrictedERC1155.supportsInterface(interfaceId)
            || AccessControlDefaultAdminRules.supportsInterface(interfaceId);
    }

    // ------------------------------------------------------------------ budgets
    /// @notice Names a service category (e.g. 0 = "sport") for explorers and reports.
    function defineCategory(uint8 category, string calldata name) external onlyRole(BUDGET_MANAGER_ROLE) {
        if (category > BudgetId.MAX_CATEGORY) revert InvalidCategory(category);
        emit CategoryDefined(category, name);
    }

    /// @notice Creates a budget: one category, one validity window, one issuance cap.
    /// @return budget The ERC-1155 id, which encodes category and window (see BudgetId).
    function createBudget(uint8 category, uint40 validFrom, uint40 validUntil, uint128 cap, string calldata name)
        external
        onlyRole(BUDGET_MANAGER_ROLE)
        returns (uint256 budget)
    {
        if (category > BudgetId.MAX_CATEGORY || validUntil <= validFrom || validUntil < block.timestamp || cap == 0) {
            revert InvalidBudgetTerms(category, validFrom, validUntil, cap);
        }
        budget = BudgetId.encode(uint32(_budgets.length + 1), category, validFrom, validUntil);
        _budgets.push(budget);
        budgetTotals[budget].cap = cap;
        emit BudgetCreated(budget, category, validFrom, validUntil, cap, name);
    }

    /// @notice Changes a budget's cap (a council amendment); never below what was issued.
    function setBudgetCap(uint256 budget, uint128 cap) external onlyRole(BUDGET_MANAGER_ROLE) {
        BudgetTotals storage totals = _existingBudget(budget);
        if (cap == 0 || cap < totals.issued) revert CapBelowIssued(budget, cap, totals.issued);
        emit BudgetCapChanged(budget, totals.cap, cap);
        totals.cap = cap;
    }

    /// @notice Every budget id, in order of creation.
    function budgets() external view returns (uint256[] memory) {
        return _budgets;
    }

    /// @notice Credit of `budget` still in circulation (with holders or providers).
    function outstanding(uint256 budget) external view returns (uint256) {
        BudgetTotals storage t = budgetTotals[budget];
        return t.issued - t.settled - t.reclaimed;
    }

    // ------------------------------------------------------------------ providers
    /// @notice Registers a provider, approved for the categories in the `categories` bitmask.
    /// @param maxAmount Fraud brake: largest amount per redemption, in cents (0 = no limit).
    function addProvider(address provider, uint64 categories, uint128 maxAmount)
        external
        onlyRole(PROVIDER_MANAGER_ROLE)
    {
        if (provider == address(0)) revert ZeroAddress();
        if (providerOf[provider].status != ProviderStatus.None) revert ProviderExists(provider);
        if (passOf[provider].status != PassStatus.None) revert AddressHasPass(provider);
        passOf[provider].status = PassStatus.Provider;
        providerOf[provider] = Provider(ProviderStatus.Active, paused, categories, maxAmount);
        _providers.push(provider);
        emit ProviderRegistered(provider, categories, maxAmount);
    }

    /// @notice Changes a provider's approved categories and per-redemption limit.
    function updateProvider(address provider, uint64 categories, uint128 maxAmount)
        external
        onlyRole(PROVIDER_MANAGER_ROLE)
    {
        Provider storage p = _knownProvider(provider);
        p.categories = categories;
        p.maxAmount = maxAmount;
        emit ProviderRegistered(provider, categories, maxAmount);
    }

    /// @notice Suspends (Suspended), reinstates (Active) or removes (Removed) a provider.
    /// A suspended or removed provider accepts no credit but can still refund and be settled.
    function setProviderStatus(address provider, ProviderStatus status) external onlyRole(PROVIDER_MANAGER_ROLE) {
        Provider storage p = _knownProvider(provider);
        if (status == ProviderStatus.None || status == p.status || p.status == ProviderStatus.Removed) {
            revert ProviderStatusUnchanged(provider, p.status);
        }
        p.status = status;
        emit ProviderStatusChanged(provider, status);
    }

    /// @notice Every provider ever registered, in order of registration.
    function providers() external view returns (address[] memory) {
        return _providers;
    }

    // ------------------------------------------------------------------ passes
    /// @notice Enrols new passes, valid until `validUntil` (unix seconds).
    function enrollPasses(address[] calldata holders, uint40 validUntil) external onlyRole(REGISTRAR_ROLE) {
        _checkValidity(validUntil);
        for (uint256 i; i < holders.length; ++i) {
            _enroll(holders[i], validUntil);
            emit PassEnrolled(holders[i], validUntil);
        }
    }

    /// @notice Extends (or shortens) passes after the yearly eligibility review.
    function renewPasses(address[] calldata holders, uint40 validUntil) external onlyRole(REGISTRAR_ROLE) {
        _checkValidity(validUntil);
        for (uint256 i; i < holders.length; ++i) {
            Pass storage p = passOf[holders[i]];
            if (p.status != PassStatus.Active && p.status != PassStatus.Suspended) {
                revert PassNotActive(holders[i], p.status);
            }
            p.validUntil = validUntil;
            emit PassRenewed(holders[i], validUntil);
        }
    }

    /// @notice Suspends an active pass: it can neither receive nor spend credit until reinstated.
    function suspendPass(address holder) external onlyRole(REGISTRAR_ROLE) {
        Pass storage p = passOf[holder];
        if (p.status != PassStatus.Active) revert PassNotActive(holder, p.status);
        p.status = PassStatus.Suspended;
        emit PassStatusChanged(holder, PassStatus.Suspended);
    }

    /// @notice Reinstates a suspended pass.
    function reinstatePass(address holder) external onlyRole(REGISTRAR_ROLE) {
        Pass storage p = passOf[holder];
        if (p.status != PassStatus.Suspended) revert PassNotSuspended(holder, p.status);
        p.status = PassStatus.Active;
        emit PassStatusChanged(holder, PassStatus.Active);
    }

    /// @notice Revokes a pass for good; its remaining credit is reclaimed after its budgets end.
    function revokePass(address holder) external onlyRole(REGISTRAR_ROLE) {
        Pass storage p = passOf[holder];
        if (p.status != PassStatus.Active && p.status != PassStatus.Suspended) revert PassNotActive(holder, p.status);
        p.status = PassStatus.Revoked;
        emit PassStatusChanged(holder, PassStatus.Revoked);
    }

    /// @notice Lost phone: moves the pass and every budget balance from `from` to the new
    /// address `to`. The old key is dead: its vouchers fail with `PassMigrated`.
    function migratePass(address from, address to) external onlyRole(REGISTRAR_ROLE) {
        Pass memory old = passOf[from];
        if (old.status != PassStatus.Active && old.status != PassStatus.Suspended) {
            revert PassNotActive(from, old.status);
        }
        _enroll(to, old.validUntil);
        passOf[to].status = old.status;
        passOf[from].status = PassStatus.Migrated;
        migratedTo[from] = to;
        emit PassMigrated(from, to);
        uint256 count = _budgets.length;
        uint256[] memory moved = new uint256[](count);
        for (uint256 i; i < count; ++i) {
            uint256 budget = _budgets[i];
            uint256 balance = balanceOf(from, budget);
            if (balance == 0) continue;
            moved[i] = balance;
            _update(from, to, budget, balance);
            emit TransferSingle(msg.sender, from, to, budget, balance);
        }
        // Receiver checks only once every balance has moved: a smart account's hook never
        // sees (or re-enters) a half-migrated pass.
        if (to.code.length == 0) return;
        for (uint256 i; i < count; ++i) {
            if (moved[i] != 0) ERC1155Utils.checkOnERC1155Received(msg.sender, from, to, _budgets[i], moved[i], "");
        }
    }

    /// @notice The address a pass lives at now, following migrations.
    function currentAddress(address holder) public view returns (address) {
        while (passOf[holder].status == PassStatus.Migrated) {
            holder = migratedTo[holder];
        }
        return holder;
    }

    // ------------------------------------------------------------------ issuance
    /// @notice Credits existing active passes from `budget`. `batchId` (e.g. a hash of the
    /// issuance file) can be used once, so a re-run never credits anyone twice.
    function issue(bytes32 batchId, uint256 budget, address[] calldata holders, uint256[] calldata amounts)
        external
        onlyRole(ISSUER_ROLE)
    {
        BudgetTotals storage totals = _openBatch(batchId, budget, holders.length, amounts.length);
        uint256 total = _mintBatch(budget, holders, amounts, 0);
        _closeBatch(totals, batchId, budget, holders.length, total);
    }

    /// @notice Enrols new residents and gives them their first credit in one transaction.
    /// Needs both the registrar and the issuer role.
    function enrollAndIssue(
        bytes32 batchId,
        uint256 budget,
        uint40 passValidUntil,
        address[] calldata holders,
        uint256[] calldata amounts
    ) external onlyRole(ISSUER_ROLE) onlyRole(REGISTRAR_ROLE) {
        _checkValidity(passValidUntil);
        BudgetTotals storage totals = _openBatch(batchId, budget, holders.length, amounts.length);
        uint256 total = _mintBatch(budget, holders, amounts, passValidUntil);
        emit PassesEnrolled(batchId, passValidUntil, holders.length);
        _closeBatch(totals, batchId, budget, holders.length, total);
    }

    // ------------------------------------------------------------------ redemption
    /// @notice EIP-712 domain separator for vouchers (name "CityPass", version "1").
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @notice The provider (caller) redeems a voucher the holder signed at the till.
    /// @param signature 65-byte (r, s, v) or 64-byte EIP-2098 ECDSA signature, or any
    /// signature the holder accepts through ERC-1271.
    function redeem(Voucher calldata voucher, bytes calldata signature) external {
        if (block.timestamp > voucher.deadline) revert VoucherExpired(voucher.deadline);
        if (voucher.amount == 0) revert ZeroAmount();
        bytes32 digest = _hashTypedDataV4(VoucherHash.hash(voucher, msg.sender));
        if (!_isValidSignature(voucher.holder, digest, signature)) revert InvalidVoucherSignature(voucher.holder);
        if (!_redeem(voucher)) revert VoucherNonceUsed(voucher.holder, voucher.budget, voucher.nonce);
    }

    /// @notice Redeems vouchers collected offline. A voucher that would fail is skipped with
    /// a `VoucherSkipped` event instead of reverting the batch.
    /// @return redeemed How many vouchers were redeemed.
    function redeemBatch(Voucher[] calldata vouchers, bytes[] calldata signatures) external returns (uint256 redeemed) {
        if (vouchers.length != signatures.length) revert LengthMismatch(vouchers.length, signatures.length);
        for (uint256 i; i < vouchers.length; ++i) {
            Voucher calldata v = vouchers[i];
            Reason reason = _voucherRule(v, msg.sender, signatures[i]);
            if (reason != Reason.Ok) {
                emit VoucherSkipped(v.holder, v.budget, v.nonce, reason);
                continue;
            }
            _redeem(v);
            ++redeemed;
        }
    }

    /// @notice Read-only pre-check at the till: `Reason.Ok`, or exactly why `provider` could
    /// not redeem this voucher now.
    function checkVoucher(Voucher calldata voucher, address provider, bytes calldata signature)
        external
        view
        returns (Reason)
    {
        return _voucherRule(voucher, provider, signature);
    }

    /// @notice Whether `holder` already used voucher nonce `nonce` for `budget`.
    function isNonceUsed(address holder, uint256 budget, uint256 nonce) public view returns (bool) {
        if (nonce < HOT_NONCES) return _flagsOf(budget, holder) & (uint256(1) << nonce) != 0;
        uint256 n = nonce - HOT_NONCES;
        return nonceBitmap[holder][budget][n >> 8] & (uint256(1) << (n & 255)) != 0;
    }

    /// @notice Bitmap of the used nonces below HOT_NONCES for (`holder`, `budget`); a wallet
    /// takes the lowest clear bit as its next nonce.
    function hotNonces(address holder, uint256 budget) external view returns (uint256) {
        return _flagsOf(budget, holder);
    }

    /// @notice The provider (caller) returns credit from one of its redemptions to the
    /// resident, identified by the redeemed voucher itself: only the provider the voucher
    /// named can refund it, only after it was redeemed, and never more than its amount in
    /// total. Goes to the pass's current address if the pass was migrated.
    /// @param voucher The redeemed voucher (the provider kept it from the scan).
    /// @param signature The holder's signature on it.
    /// @param amount Euro cents to return (partial refunds add up to at most voucher.amount).
    function refund(Voucher calldata voucher, bytes calldata signature, uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        bytes32 digest = _hashTypedDataV4(VoucherHash.hash(voucher, msg.sender));
        if (!_isValidSignature(voucher.holder, digest, signature)) revert InvalidVoucherSignature(voucher.holder);
        if (!isNonceUsed(voucher.holder, voucher.budget, voucher.nonce)) {
            revert UnknownRedemption(voucher.holder, voucher.budget, voucher.nonce);
        }
        uint256 total = refunded[digest] + amount;
        if (total > voucher.amount) revert RefundExceedsRedemption(digest, voucher.amount, total);
        refunded[digest] = total;
        address to = currentAddress(voucher.holder);
        _update(msg.sender, to, voucher.budget, amount);
        emit TransferSingle(msg.sender, msg.sender, to, voucher.budget, amount);
        emit Refunded(to, msg.sender, voucher.budget, amount, voucher.nonce);
        _checkReceiver(msg.sender, to, voucher.budget, amount);
    }

    // ------------------------------------------------------------------ end of a budget
    /// @notice After `budget` ended, burns what the given holders have left. Provider
    /// addresses are skipped: their credit stays payable. Re-running is harmless.
    function reclaim(uint256 budget, address[] calldata holders) external onlyRole(BUDGET_MANAGER_ROLE) {
        BudgetTotals storage totals = _existingBudget(budget);
        // Also checked per holder by the hook; here so that a run with nothing to burn is
        // refused too, rather than recording an empty reclaim.
        if (paused) revert SystemPaused();
        if (block.timestamp <= budget.validUntil()) revert BudgetNotEnded(budget, budget.validUntil());
        uint256 total = 0;
        uint256 count = 0;
        for (uint256 i; i < holders.length; ++i) {
            address holder = holders[i];
            uint256 balance = balanceOf(holder, budget);
            if (balance == 0 || providerOf[holder].status != ProviderStatus.None) continue;
            _update(holder, address(0), budget, balance);
            emit TransferSingle(msg.sender, holder, address(0), budget, balance);
            total += balance;
            ++count;
        }
        totals.reclaimed += uint128(total);
        emit Reclaimed(budget, count, total);
    }

    /// @notice Records that the municipality paid `provider` for credit it redeemed: burns
    /// that credit under a payment reference that can never be used again.
    function settle(
        address provider,
        uint256[] calldata budgetIds,
        uint256[] calldata amounts,
        bytes32 paymentReference
    ) external onlyRole(TREASURER_ROLE) {
        _knownProvider(provider);
        if (budgetIds.length != amounts.length) revert LengthMismatch(budgetIds.length, amounts.length);
        if (budgetIds.length == 0) revert EmptySettlement();
        if (referenceSettled[paymentReference]) revert ReferenceAlreadySettled(paymentReference);
        referenceSettled[paymentReference] = true;
        for (uint256 i; i < budgetIds.length; ++i) {
            uint256 budget = budgetIds[i];
            uint256 amount = amounts[i];
            if (amount == 0) revert ZeroAmount();
            BudgetTotals storage totals = _existingBudget(budget);
            _update(provider, address(0), budget, amount);
            totals.settled += uint128(amount);
            emit TransferSingle(msg.sender, provider, address(0), budget, amount);
            emit Settled(provider, budget, paymentReference, amount);
        }
    }

    // ------------------------------------------------------------------ pause
    /// @notice Emergency stop: no credit moves until `unpause`.
    function pause() external onlyRole(PAUSER_ROLE) {
        _setPaused(true);
    }

    /// @notice Ends an emergency stop.
    function unpause() external onlyRole(PAUSER_ROLE) {
        _setPaused(false);
    }

    // ------------------------------------------------------------------ the rules
    /// @dev The transfer rules, for every balance change (see RestrictedERC1155._update).
    function _checkMove(address from, address to, uint256 budget, uint256 value) internal view override {
        Reason reason = _moveRule(from, to, budget, value);
        if (reason != Reason.Ok) revert CreditMoveRefused(reason, from, to, budget);
    }

    /// @dev Classifies the move by who sends and who receives, then applies that kind's rule.
    /// Only payments (holder => provider) may happen through any function (redeem, the
    /// ERC-1155 transfers); every other kind only inside the function that is its purpose
    /// (`msg.sig`), so e.g. a provider cannot send credit to a holder except as a refund.
    /// Issuance checks budget, cap and pause once per batch (`_openBatch`/`_closeBatch`) and
    /// applies the mint rule below inline (`_mintBatch`): a mint only needs an eligible recipient.
    function _moveRule(address from, address to, uint256 budget, uint256 value) internal view returns (Reason) {
        if (from == address(0)) return _passRule(passOf[to]); // issuance
        if (to == address(0)) return _burnRule(from, budget); // settlement or reclaim

        Provider memory receiver = providerOf[to];
        if (receiver.status != ProviderStatus.None) {
            // Payment: holder => provider.
            if (receiver.paused) return Reason.Paused;
            Reason passReason = _passRule(passOf[from]);
            if (passReason != Reason.Ok) return passReason;
            if (receiver.status == ProviderStatus.Suspended) return Reason.ProviderSuspended;
            if (receiver.status == ProviderStatus.Removed) return Reason.ProviderRemoved;
            if (receiver.categories & (uint64(1) << budget.category()) == 0) return Reason.CategoryNotApproved;
            if (block.timestamp < budget.validFrom()) return Reason.BudgetNotStarted;
            if (block.timestamp > budget.validUntil()) return Reason.BudgetEnded;
            if (receiver.maxAmount != 0 && value > receiver.maxAmount) return Reason.AboveProviderLimit;
            return Reason.Ok;
        }

        Provider memory sender = providerOf[from];
        if (sender.status != ProviderStatus.None) {
            // Refund: provider => holder, only inside `refund` (which links it to a redemption).
            if (msg.sig != this.refund.selector) return Reason.TransferNotAllowed;
            if (sender.paused) return Reason.Paused;
            Reason passReason = _passRule(passOf[to]);
            if (passReason != Reason.Ok) return passReason;
            if (block.timestamp > budget.validUntil()) return Reason.BudgetEnded;
            return Reason.Ok;
        }

        // Migration: old address => new address of the same pass, inside `migratePass`.
        if (msg.sig == this.migratePass.selector && passOf[from].status == PassStatus.Migrated && migratedTo[from] == to) {
            return paused ? Reason.Paused : Reason.Ok;
        }
        return Reason.TransferNotAllowed;
    }

    /// @dev Credit leaves circulation only inside `settle` (a provider's) or `reclaim` (a
    /// holder's, after the budget ended).
    function _burnRule(address from, uint256 budget) private view returns (Reason) {
        Provider memory provider = providerOf[from];
        if (provider.status != ProviderStatus.None) {
            if (msg.sig != this.settle.selector) return Reason.TransferNotAllowed;
            return provider.paused ? Reason.Paused : Reason.Ok;
        }
        if (msg.sig != this.reclaim.selector) return Reason.TransferNotAllowed;
        PassStatus status = passOf[from].status;
        if (status == PassStatus.None || status == PassStatus.Provider) return Reason.NoPass;
        if (paused) return Reason.Paused;
        return block.timestamp > budget.validUntil() ? Reason.Ok : Reason.BudgetNotEnded; // reclaim
    }

    function _passRule(Pass memory pass) private view returns (Reason) {
        if (pass.status == PassStatus.Active) {
            return block.timestamp > pass.validUntil ? Reason.PassExpired : Reason.Ok;
        }
        if (pass.status == PassStatus.None) return Reason.NoPass;
        if (pass.status == PassStatus.Suspended) return Reason.PassSuspended;
        if (pass.status == PassStatus.Revoked) return Reason.PassRevoked;
        if (pass.status == PassStatus.Migrated) return Reason.PassMigrated;
        return Reason.NoPass; // a provider's address
    }

    /// @dev Everything `redeem` checks, as a reason instead of a revert.
    function _voucherRule(Voucher calldata v, address provider, bytes calldata signature)
        private
        view
        returns (Reason)
    {
        if (block.timestamp > v.deadline) return Reason.VoucherExpired;
        if (v.amount == 0) return Reason.ZeroAmount;
        if (providerOf[provider].status == ProviderStatus.None) return Reason.NotAProvider;
        bytes32 digest = _hashTypedDataV4(VoucherHash.hash(v, provider));
        if (!_isValidSignature(v.holder, digest, signature)) return Reason.BadSignature;
        if (isNonceUsed(v.holder, v.budget, v.nonce)) return Reason.NonceUsed;
        Reason reason = _moveRule(v.holder, provider, v.budget, v.amount);
        if (reason != Reason.Ok) return reason;
        if (balanceOf(v.holder, v.budget) < v.amount) return Reason.InsufficientCredit;
        return Reason.Ok;
    }

    // ------------------------------------------------------------------ internals
    /// @dev Uses the voucher's nonce and moves the credit; false (nothing done) if the nonce
    /// was used. A hot nonce is set in the same ledger write as the debit (see HOT_NONCES).
    function _redeem(Voucher calldata v) private returns (bool) {
        uint128 nonceBit = 0; // a cold nonce sets no flag in the ledger word
        if (v.nonce < HOT_NONCES) {
            nonceBit = uint128(uint256(1) << v.nonce); // v.nonce < 128
        } else if (!_useColdNonce(v.holder, v.budget, v.nonce)) {
            return false;
        }
        uint128 flagsBefore = _update(v.holder, msg.sender, v.budget, v.amount, nonceBit);
        if (flagsBefore & nonceBit != 0) return false; // the caller reverts, undoing the move
        emit TransferSingle(msg.sender, v.holder, msg.sender, v.budget, v.amount);
        emit Redeemed(v.holder, v.nonce, v.coPayment);
        _checkReceiver(v.holder, msg.sender, v.budget, v.amount);
        return true;
    }

    /// @dev ECDSA first (cheap, and needs no code lookup); ERC-1271 for smart accounts.
    function _isValidSignature(address holder, bytes32 digest, bytes calldata signature) private view returns (bool) {
        address recovered = address(0);
        // Neither 65 nor 64 bytes: not an ECDSA signature, only ERC-1271 can accept it.
        ECDSA.RecoverError recoverError = ECDSA.RecoverError.InvalidSignatureLength;
        if (signature.length == 65) {
            // slither-disable-next-line unused-return -- the third value only details an error for reverts
            (recovered, recoverError,) = ECDSA.tryRecover(
                digest, uint8(signature[64]), bytes32(signature[0:32]), bytes32(signature[32:64])
            );
        } else if (signature.length == 64) {
            // slither-disable-next-line unused-return -- the third value only details an error for reverts
            (recovered, recoverError,) = ECDSA.tryRecover(digest, bytes32(signature[0:32]), bytes32(signature[32:64]));
        }
        if (recoverError == ECDSA.RecoverError.NoError && recovered == holder && holder != address(0)) return true;
        return SignatureChecker.isValidERC1271SignatureNow(holder, digest, signature);
    }

    /// @dev Marks a nonce >= HOT_NONCES used; false if it already was.
    function _useColdNonce(address holder, uint256 budget, uint256 nonce) private returns (bool) {
        uint256 n = nonce - HOT_NONCES;
        uint256 bit = uint256(1) << (n & 255);
        uint256 word = nonceBitmap[holder][budget][n >> 8];
        if (word & bit != 0) return false;
        nonceBitmap[holder][budget][n >> 8] = word | bit;
        return true;
    }

    /// @dev ERC-1155 acceptance check, without allocating call data when `to` is an EOA.
    function _checkReceiver(address from, address to, uint256 budget, uint256 amount) private {
        if (to.code.length != 0) ERC1155Utils.checkOnERC1155Received(msg.sender, from, to, budget, amount, "");
    }

    function _enroll(address holder, uint40 validUntil) private {
        if (holder == address(0)) revert ZeroAddress();
        PassStatus status = passOf[holder].status;
        if (status == PassStatus.Provider) revert AddressIsProvider(holder);
        if (status != PassStatus.None) revert PassExists(holder);
        passOf[holder] = Pass(PassStatus.Active, validUntil);
    }

    /// @dev The issuance loop: credits `amounts[i]` of `budget` to `holders[i]`, enrolling each
    /// holder first when `enrolUntil` is not 0. It runs up to MAX_PASSES_PER_BATCH times per
    /// transaction and the gas targets leave a few hundred gas per resident beyond the two
    /// storage writes, the receiver check and the event, so the per-resident work is assembly.
    /// It does exactly what `_enroll` + `_update(address(0), holder, ...)` do, no more:
    ///  - enrolling: the pass slot must be empty (no pass, not a provider's address);
    ///  - crediting: the mint rule of `_moveRule` (an active, unexpired pass);
    ///  - the ledger credit, the `TransferSingle` event and the ERC-1155 receiver check.
    /// Budget, cap and pause are checked once per batch by `_openBatch`/`_closeBatch`. Any
    /// failure reverts the whole batch with the error `_update` would give (`_refuseMint`).
    function _mintBatch(uint256 budget, address[] calldata holders, uint256[] calldata amounts, uint40 enrolUntil)
        private
        returns (uint256 total)
    {
        bytes32 ledgerBase = _ledgerBaseSlot(budget);
        bytes32 transferSingle = TransferSingle.selector;
        uint256 newPass = uint256(PassStatus.Active) | (uint256(enrolUntil) << 8); // Pass(Active, enrolUntil)
        uint256 count = holders.length;
        for (uint256 i; i < count;) {
            address holder;
            uint256 amount;
            bool ok;
            bool slowPath; // refused, or a contract recipient to ask (rare: one branch for both)
            assembly ("memory-safe") {
                holder := calldataload(add(holders.offset, shl(5, i)))
                amount := calldataload(add(amounts.offset, shl(5, i)))
                mstore(0x00, holder)
                mstore(0x20, passOf.slot)
                let passSlot := keccak256(0x00, 0x40)
                let pass := sload(passSlot)
                switch enrolUntil
                case 0 {
                    // Pass{status: uint8 at bits 0..7, validUntil: uint40 at bits 8..47}
                    ok := and(eq(and(pass, 0xff), 1), iszero(gt(timestamp(), and(shr(8, pass), 0xffffffffff))))
                }
                default {
                    ok := iszero(pass)
                    if ok { sstore(passSlot, newPass) }
                }
                // holder in [1, 2**160 - 1] and amount in [1, 2**128 - 1] (0 - 1 wraps to 2**256 - 1)
                ok := and(ok, lt(sub(holder, 1), 0xffffffffffffffffffffffffffffffffffffffff))
                ok := and(ok, lt(sub(amount, 1), 0xffffffffffffffffffffffffffffffff))
                slowPath := or(iszero(ok), extcodesize(holder))
                mstore(0x20, ledgerBase)
                let ledgerSlot := keccak256(0x00, 0x40)
                sstore(ledgerSlot, add(sload(ledgerSlot), amount))
                mstore(0x00, budget)
                mstore(0x20, amount)
                log4(0x00, 0x40, transferSingle, caller(), 0, holder)
                total := add(total, amount) // cannot overflow: each amount < 2**128, count <= 2,000
            }
            if (slowPath) {
                if (!ok) _refuseMint(holder, budget, amount, enrolUntil != 0);
                ERC1155Utils.checkOnERC1155Received(msg.sender, address(0), holder, budget, amount, "");
            }
            unchecked {
                ++i;
            }
        }
    }

    /// @dev Reverts with the error `_enroll`/`_update` would give for a resident `_mintBatch`
    /// refused (it wrote nothing to a refused resident's pass slot, so this sees it as it was).
    function _refuseMint(address holder, uint256 budget, uint256 amount, bool enrolling) private view {
        if (holder == address(0)) revert ZeroAddress();
        if (amount == 0) revert ZeroAmount();
        if (amount > type(uint128).max) revert ERC1155InsufficientBalance(address(0), 0, amount, budget);
        PassStatus status = passOf[holder].status;
        if (enrolling) {
            if (status == PassStatus.Provider) revert AddressIsProvider(holder);
            revert PassExists(holder); // also a holder listed twice in one batch
        }
        revert CreditMoveRefused(_passRule(passOf[holder]), address(0), holder, budget);
    }

    function _openBatch(bytes32 batchId, uint256 budget, uint256 holders, uint256 amounts)
        private
        returns (BudgetTotals storage totals)
    {
        if (paused) revert SystemPaused();
        if (holders != amounts) revert LengthMismatch(holders, amounts);
        if (holders > MAX_PASSES_PER_BATCH) revert BatchTooLarge(holders, MAX_PASSES_PER_BATCH);
        if (batchIssued[batchId]) revert BatchAlreadyIssued(batchId);
        totals = _existingBudget(budget);
        if (block.timestamp > budget.validUntil()) revert BudgetClosed(budget, budget.validUntil());
        batchIssued[batchId] = true;
    }

    function _closeBatch(BudgetTotals storage totals, bytes32 batchId, uint256 budget, uint256 count, uint256 total)
        private
    {
        uint256 issued = totals.issued + total;
        if (issued > totals.cap) revert BudgetCapExceeded(budget, totals.cap, issued);
        totals.issued = uint128(issued);
        emit BatchIssued(batchId, budget, count, total);
    }

    function _existingBudget(uint256 budget) private view returns (BudgetTotals storage totals) {
        totals = budgetTotals[budget];
        if (totals.cap == 0) revert UnknownBudget(budget);
    }

    function _knownProvider(address provider) private view returns (Provider storage p) {
        p = providerOf[provider];
        if (p.status == ProviderStatus.None) revert UnknownProvider(provider);
    }

    function _checkValidity(uint40 validUntil) private view {
        if (validUntil < block.timestamp) revert InvalidValidity(validUntil);
    }

    /// @dev Writes the flag and its copy in every provider record, so that the hot path
    /// (every move involving a provider) reads it from the provider slot it loads anyway.
    function _setPaused(bool value) private {
        if (paused == value) revert PauseUnchanged(value);
        paused = value;
        uint256 count = _providers.length;
        for (uint256 i; i < count; ++i) {
            providerOf[_providers[i]].paused = value;
        }
        emit PauseChanged(value, msg.sender);
    }
}
