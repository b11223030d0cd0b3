// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {IERC1155Receiver} from "@openzeppelin/contracts/token/ERC1155/IERC1155Receiver.sol";
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
        TransferNotAllowed,
        AboveVoucherLimit, // the amount typed at the till is above the voucher's maxAmount
        WrongProvider // the voucher names another provider
    }

    /// @dev One slot per pass: everything the eligibility check reads.
    struct Pass {
        PassStatus status;
        uint40 validUntil; // unix seconds, inclusive; eligibility is re-assessed yearly
    }

    /// @dev One slot per provider: everything a payment to it checks but the pause flag.
    struct Provider {
        ProviderStatus status;
        uint64 categories; // bit c set = approved for category c
        uint128 maxAmount; // per redemption/transfer, euro cents; 0 = no limit
    }

    /// @dev Per-budget accounting; the terms (category, window) live in the id itself.
    struct BudgetTotals {
        uint128 cap; // the council's appropriation; > 0 for every created budget
        uint128 issued;
        uint128 settled;
        uint128 reclaimed;
        uint128 corrected; // taken back by the issuer (issued in error): see `correct`
    }

    /// @dev What a refundable redemption (`redeemRefundable`) can still return, in one slot.
    struct Refundable {
        address provider; // the provider that redeemed it; address(0) = no refundable redemption
        uint96 remaining; // euro cents
    }

    /// @notice Voucher nonces are unordered and counted per (holder, budget). Nonces below
    /// HOT_NONCES are flags in the holder's ledger slot for that budget, which the redemption
    /// writes anyway; higher ones use `nonceBitmap`.
    uint256 public constant HOT_NONCES = 128;
    uint256 public constant MAX_PASSES_PER_BATCH = 2_000;
    /// @notice Gas given to a smart account's ERC-1271 `isValidSignature` (a read-only call;
    /// enough for a P-256/WebAuthn check in Solidity). An account that needs more, reverts or
    /// answers anything but the magic value has not signed: its voucher is a bad signature.
    uint256 public constant ERC1271_GAS = 200_000;
    /// @notice Gas given to a contract resident's ERC-1155 acceptance hook during issuance (a
    /// read-only call). A resident whose hook needs more, reverts or refuses is skipped
    /// (`IssueSkipped`): no single resident can block a batch.
    uint256 public constant ISSUE_HOOK_GAS = 50_000;
    uint256 private constant MAX_NAME_BYTES = 64;

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
    /// @notice Settlement payment references already used, keyed by keccak256 of the text.
    mapping(bytes32 paymentReference => bool) public referenceSettled;
    /// @dev Refundable redemptions by (holder, budget, nonce).
    mapping(address holder => mapping(uint256 budget => mapping(uint256 nonce => Refundable))) private _refundables;

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
    /// @notice A provider's public name (addProvider, renameProvider).
    event ProviderNamed(address indexed provider, string name);
    event PassEnrolled(address indexed holder, uint40 validUntil);
    /// @notice Passes created by `enrollAndIssue`; their addresses are the recipients of the
    /// mint (`TransferSingle` from address 0) events of the same transaction.
    event PassesEnrolled(bytes32 indexed batchId, uint40 validUntil, uint256 count);
    event PassRenewed(address indexed holder, uint40 validUntil);
    event PassStatusChanged(address indexed holder, PassStatus status);
    event PassMigrated(address indexed from, address indexed to);
    /// @notice Counts and totals only the residents credited (see IssueSkipped).
    event BatchIssued(bytes32 indexed batchId, uint256 indexed budget, uint256 count, uint256 total);
    /// @notice A contract resident's acceptance hook refused the credit (or ran out of its
    /// gas): nothing was credited to it, the rest of the batch was. Its batch id is used up.
    event IssueSkipped(bytes32 indexed batchId, address indexed holder, uint256 amount);
    /// @notice Follows the `TransferSingle` (holder => provider) of the same redemption.
    event Redeemed(address indexed holder, uint256 nonce, uint256 coPayment);
    /// @notice Follows `Redeemed` for a `redeemRefundable`: `amount` can be refunded.
    event RefundableRedemption(address indexed holder, uint256 indexed budget, uint256 nonce, uint256 amount);
    event VoucherSkipped(address indexed holder, uint256 indexed budget, uint256 nonce, Reason reason);
    event Refunded(address indexed holder, address indexed provider, uint256 indexed budget, uint256 amount, uint256 redemptionNonce);
    event Reclaimed(uint256 indexed budget, uint256 holders, uint256 total);
    event Corrected(address indexed holder, uint256 indexed budget, uint256 amount, string referenceText);
    /// @notice The payment reference text of a settlement, once per `settle` call.
    event SettlementReference(bytes32 indexed paymentReference, string referenceText);
    event Settled(address indexed provider, uint256 indexed budget, bytes32 indexed paymentReference, uint256 amount);
    event PauseChanged(bool paused, address indexed account);

    // ------------------------------------------------------------------ errors
    error CreditMoveRefused(Reason reason, address from, address to, uint256 budget);
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
    error NotTheRedeemingProvider(address holder, uint256 budget, uint256 nonce, address provider);
    error RefundExceedsRedemption(address holder, uint256 budget, uint256 nonce, uint256 remaining, uint256 amount);
    error InvalidName();
    error EmptyReference();
    error PassNotMigrated(address holder, PassStatus status);
    error GasBelowCallBudget(uint256 gasLeft, uint256 needed);
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
        EIP712("CityPass", "2")
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
        return t.issued - t.settled - t.reclaimed - t.corrected;
    }

    // ------------------------------------------------------------------ providers
    /// @notice Registers a provider, approved for the categories in the `categories` bitmask.
    /// @param maxAmount Fraud brake: largest amount per redemption, in cents (0 = no limit).
    /// @param name The provider's public name: 1..64 bytes of UTF-8, no control characters.
    function addProvider(address provider, uint64 categories, uint128 maxAmount, string calldata name)
        external
        onlyRole(PROVIDER_MANAGER_ROLE)
    {
        if (provider == address(0)) revert ZeroAddress();
        if (providerOf[provider].status != ProviderStatus.None) revert ProviderExists(provider);
        if (passOf[provider].status != PassStatus.None) revert AddressHasPass(provider);
        _checkName(name);
        passOf[provider].status = PassStatus.Provider;
        providerOf[provider] = Provider(ProviderStatus.Active, categories, maxAmount);
        _providers.push(provider);
        emit ProviderRegistered(provider, categories, maxAmount);
        emit ProviderNamed(provider, name);
    }

    /// @notice Changes a provider's public name (same rules as in `addProvider`).
    function renameProvider(address provider, string calldata name) external onlyRole(PROVIDER_MANAGER_ROLE) {
        _knownProvider(provider);
        _checkName(name);
        emit ProviderNamed(provider, name);
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

    /// @notice Lost phone: moves the pass from `from` to the new address `to`, with its
    /// balances of `budgetIds` (the caller lists them, so the gas is bounded; the rest can
    /// follow with `migrateBalances`). The old key is dead: its vouchers fail with `PassMigrated`.
    function migratePass(address from, address to, uint256[] calldata budgetIds) external onlyRole(REGISTRAR_ROLE) {
        Pass memory old = passOf[from];
        if (old.status != PassStatus.Active && old.status != PassStatus.Suspended) {
            revert PassNotActive(from, old.status);
        }
        _enroll(to, old.validUntil);
        passOf[to].status = old.status;
        passOf[from].status = PassStatus.Migrated;
        migratedTo[from] = to;
        emit PassMigrated(from, to);
        _moveBalances(from, to, budgetIds);
    }

    /// @notice Moves what a migrated pass `from` still holds of `budgetIds` to the pass's
    /// current address (following every migration since).
    function migrateBalances(address from, uint256[] calldata budgetIds) external onlyRole(REGISTRAR_ROLE) {
        PassStatus status = passOf[from].status;
        if (status != PassStatus.Migrated) revert PassNotMigrated(from, status);
        _moveBalances(from, currentAddress(from), budgetIds);
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
        (uint256 count, uint256 total) = _mintBatch(batchId, budget, holders, amounts, 0);
        _closeBatch(totals, batchId, budget, count, total);
    }

    /// @notice Enrols new residents and gives them their first credit in one transaction.
    /// Needs both the registrar and the issuer role: one key then holds both, which weakens
    /// the four-eyes split between enrolling and crediting (a multisig should hold them).
    /// A skipped resident (`IssueSkipped`) is not enrolled either.
    function enrollAndIssue(
        bytes32 batchId,
        uint256 budget,
        uint40 passValidUntil,
        address[] calldata holders,
        uint256[] calldata amounts
    ) external onlyRole(ISSUER_ROLE) onlyRole(REGISTRAR_ROLE) {
        _checkValidity(passValidUntil);
        BudgetTotals storage totals = _openBatch(batchId, budget, holders.length, amounts.length);
        (uint256 count, uint256 total) = _mintBatch(batchId, budget, holders, amounts, passValidUntil);
        emit PassesEnrolled(batchId, passValidUntil, count);
        _closeBatch(totals, batchId, budget, count, total);
    }

    // ------------------------------------------------------------------ redemption
    /// @notice EIP-712 domain separator for vouchers (name "CityPass", version "2").
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @notice The provider (caller) redeems a voucher the holder signed: takes `amount`
    /// cents (1..voucher.maxAmount, typed at the till) and records the cash `coPayment`.
    /// Cannot be refunded (see `redeemRefundable`).
    /// @param signature 65-byte (r, s, v) or 64-byte EIP-2098 ECDSA signature, or any
    /// signature the holder accepts through ERC-1271. Both ECDSA forms of one signature are
    /// accepted, so off-chain code must never deduplicate vouchers by signature bytes (the
    /// nonce is what makes a voucher single-use).
    function redeem(Voucher calldata voucher, bytes calldata signature, uint256 amount, uint256 coPayment) external {
        _redeemOrRevert(voucher, signature, amount, coPayment);
    }

    /// @notice `redeem` for a payment that may have to be refunded (e.g. a course that may be
    /// cancelled): the chain stores what it debited, so `refund` can return up to that.
    function redeemRefundable(Voucher calldata voucher, bytes calldata signature, uint256 amount, uint256 coPayment)
        external
    {
        _redeemOrRevert(voucher, signature, amount, coPayment); // refundable: see _redeem
    }

    /// @notice Redeems vouchers collected offline. A voucher that would fail is skipped with
    /// a `VoucherSkipped` event instead of reverting the batch.
    /// @return redeemed How many vouchers were redeemed.
    function redeemBatch(
        Voucher[] calldata vouchers,
        bytes[] calldata signatures,
        uint256[] calldata amounts,
        uint256[] calldata coPayments
    ) external returns (uint256 redeemed) {
        uint256 count = vouchers.length;
        if (count != signatures.length) revert LengthMismatch(count, signatures.length);
        if (count != amounts.length) revert LengthMismatch(count, amounts.length);
        if (count != coPayments.length) revert LengthMismatch(count, coPayments.length);
        for (uint256 i; i < count; ++i) {
            Voucher calldata v = vouchers[i];
            (Reason reason, uint256 word) = _voucherRule(v, msg.sender, signatures[i], amounts[i]);
            if (reason != Reason.Ok) {
                emit VoucherSkipped(v.holder, v.budget, v.nonce, reason);
                continue;
            }
            _redeem(v, amounts[i], coPayments[i], false, word);
            ++redeemed;
        }
    }

    /// @notice Read-only pre-check at the till: `Reason.Ok`, or exactly why `provider` could
    /// not redeem `amount` cents with this voucher now (at block.timestamp of the call).
    function checkVoucher(Voucher calldata voucher, address provider, bytes calldata signature, uint256 amount)
        external
        view
        returns (Reason)
    {
        (Reason reason,) = _voucherRule(voucher, provider, signature, amount);
        return reason;
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

    /// @notice The provider (caller) returns credit from one of its refundable redemptions
    /// (`redeemRefundable`) to the resident: only the provider that made it, and never more
    /// than it debited in total. Goes to the pass's current address if it was migrated.
    /// @param holder The voucher's holder (as signed, before any migration).
    /// @param amount Euro cents to return (partial refunds add up to at most the redemption).
    function refund(address holder, uint256 budget, uint256 nonce, uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        Refundable storage record = _refundables[holder][budget][nonce];
        Refundable memory r = record;
        if (r.provider == address(0)) revert UnknownRedemption(holder, budget, nonce);
        if (r.provider != msg.sender) revert NotTheRedeemingProvider(holder, budget, nonce, r.provider);
        if (amount > r.remaining) revert RefundExceedsRedemption(holder, budget, nonce, r.remaining, amount);
        record.remaining = r.remaining - uint96(amount); // amount <= remaining < 2**96
        address to = currentAddress(holder);
        _update(msg.sender, to, budget, amount);
        emit TransferSingle(msg.sender, msg.sender, to, budget, amount);
        emit Refunded(to, msg.sender, budget, amount, nonce);
        _checkReceiver(msg.sender, to, budget, amount);
    }

    /// @notice What a refundable redemption can still return: the provider that made it and
    /// the cents left; (address(0), 0) if (holder, budget, nonce) was no refundable redemption.
    function refundableOf(address holder, uint256 budget, uint256 nonce)
        external
        view
        returns (address provider, uint256 remaining)
    {
        Refundable memory r = _refundables[holder][budget][nonce];
        return (r.provider, r.remaining);
    }

    /// @notice The issuer takes back unspent credit it issued in error (a correction, with
    /// the reference of the decision). Never more than the holder has; refused while paused.
    /// Counted apart: issued = held + settled + reclaimed + corrected.
    function correct(address holder, uint256 budget, uint256 amount, string calldata referenceText)
        external
        onlyRole(ISSUER_ROLE)
    {
        if (amount == 0) revert ZeroAmount();
        if (bytes(referenceText).length == 0) revert EmptyReference();
        BudgetTotals storage totals = _existingBudget(budget);
        _update(holder, address(0), budget, amount); // the burn rule: a pass holder's credit, not paused
        totals.corrected += uint128(amount); // amount <= a balance < 2**128
        emit TransferSingle(msg.sender, holder, address(0), budget, amount);
        emit Corrected(holder, budget, amount, referenceText);
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
    /// @param referenceText The payment reference the treasurer typed (as on the bank transfer);
    /// the chain keys it by keccak256(bytes(referenceText)) and emits the text once.
    function settle(
        address provider,
        uint256[] calldata budgetIds,
        uint256[] calldata amounts,
        string calldata referenceText
    ) external onlyRole(TREASURER_ROLE) {
        _knownProvider(provider);
        if (budgetIds.length != amounts.length) revert LengthMismatch(budgetIds.length, amounts.length);
        if (budgetIds.length == 0) revert EmptySettlement();
        if (bytes(referenceText).length == 0) revert EmptyReference();
        bytes32 paymentReference = keccak256(bytes(referenceText));
        if (referenceSettled[paymentReference]) revert ReferenceAlreadySettled(paymentReference);
        referenceSettled[paymentReference] = true;
        emit SettlementReference(paymentReference, referenceText);
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
    /// @notice Emergency stop: no credit moves until `unpause`. One storage write, whatever
    /// the number of providers or budgets; nothing a role below admin does can block it.
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
        if (receiver.status != ProviderStatus.None) return _paymentRule(from, receiver, budget, value);

        Provider memory sender = providerOf[from];
        if (sender.status != ProviderStatus.None) {
            // Refund: provider => holder, only inside `refund` (which links it to a redemption).
            if (msg.sig != this.refund.selector) return Reason.TransferNotAllowed;
            if (paused) return Reason.Paused;
            Reason passReason = _passRule(passOf[to]);
            if (passReason != Reason.Ok) return passReason;
            if (block.timestamp > budget.validUntil()) return Reason.BudgetEnded;
            return Reason.Ok;
        }

        // Migration: old address => current address of the same pass, inside `migratePass`
        // or `migrateBalances`.
        if (
            (msg.sig == this.migratePass.selector || msg.sig == this.migrateBalances.selector)
                && passOf[from].status == PassStatus.Migrated && currentAddress(from) == to
        ) {
            return paused ? Reason.Paused : Reason.Ok;
        }
        // A redemption whose caller is no provider: the same code `checkVoucher` gives.
        if (msg.sig == this.redeem.selector || msg.sig == this.redeemRefundable.selector) return Reason.NotAProvider;
        return Reason.TransferNotAllowed;
    }

    /// @dev Payment: holder `from` => `receiver`, a registered provider.
    function _paymentRule(address from, Provider memory receiver, uint256 budget, uint256 value)
        private
        view
        returns (Reason)
    {
        if (paused) return Reason.Paused;
        Pass memory pass = passOf[from];
        if (pass.status == PassStatus.Provider) return Reason.TransferNotAllowed; // provider => provider
        Reason passReason = _passRule(pass);
        if (passReason != Reason.Ok) return passReason;
        if (receiver.status == ProviderStatus.Suspended) return Reason.ProviderSuspended;
        if (receiver.status == ProviderStatus.Removed) return Reason.ProviderRemoved;
        if (receiver.categories & (uint64(1) << budget.category()) == 0) return Reason.CategoryNotApproved;
        if (block.timestamp < budget.validFrom()) return Reason.BudgetNotStarted;
        if (block.timestamp > budget.validUntil()) return Reason.BudgetEnded;
        if (receiver.maxAmount != 0 && value > receiver.maxAmount) return Reason.AboveProviderLimit;
        return Reason.Ok;
    }

    /// @dev Credit leaves circulation only inside `settle` (a provider's), `reclaim` (a
    /// holder's, after the budget ended) or `correct` (a holder's, issued in error).
    function _burnRule(address from, uint256 budget) private view returns (Reason) {
        if (providerOf[from].status != ProviderStatus.None) {
            if (msg.sig != this.settle.selector) return Reason.TransferNotAllowed;
            return paused ? Reason.Paused : Reason.Ok;
        }
        bool reclaiming = msg.sig == this.reclaim.selector;
        if (!reclaiming && msg.sig != this.correct.selector) return Reason.TransferNotAllowed;
        PassStatus status = passOf[from].status;
        if (status == PassStatus.None || status == PassStatus.Provider) return Reason.NoPass;
        if (paused) return Reason.Paused;
        if (!reclaiming) return Reason.Ok; // correct
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
    /// @return reason Why not, or Ok. @return word The holder's ledger word (balance and hot
    /// nonces) when it got that far, for `_redeem` in the same call.
    function _voucherRule(Voucher calldata v, address provider, bytes calldata signature, uint256 amount)
        private
        view
        returns (Reason reason, uint256 word)
    {
        if (block.timestamp > v.deadline) return (Reason.VoucherExpired, 0);
        if (amount == 0) return (Reason.ZeroAmount, 0);
        if (amount > v.maxAmount) return (Reason.AboveVoucherLimit, 0);
        Provider memory receiver = providerOf[provider];
        if (receiver.status == ProviderStatus.None) return (Reason.NotAProvider, 0);
        if (v.provider != address(0) && v.provider != provider) return (Reason.WrongProvider, 0);
        address holder = v.holder;
        uint256 budget = v.budget;
        uint256 nonce = v.nonce;
        if (!_isValidSignature(holder, _hashTypedDataV4(VoucherHash.hash(v)), signature)) {
            return (Reason.BadSignature, 0);
        }
        word = _ledgerWord(budget, holder);
        if (nonce < HOT_NONCES ? (word >> (128 + nonce)) & 1 != 0 : isNonceUsed(holder, budget, nonce)) {
            return (Reason.NonceUsed, word);
        }
        reason = _paymentRule(holder, receiver, budget, amount); // = _moveRule(holder, provider, ...)
        if (reason == Reason.Ok && uint128(word) < amount) reason = Reason.InsufficientCredit;
    }

    // ------------------------------------------------------------------ internals
    /// @dev `redeem`/`redeemRefundable`: the checks of `checkVoucher`, and a refusal reverts
    /// with the same reason (`CreditMoveRefused(reason, holder, caller, budget)`): one rule,
    /// one code. The two entry points share this code; the selector says which one ran.
    function _redeemOrRevert(Voucher calldata v, bytes calldata signature, uint256 amount, uint256 coPayment)
        private
    {
        (Reason reason, uint256 word) = _voucherRule(v, msg.sender, signature, amount);
        if (reason != Reason.Ok) revert CreditMoveRefused(reason, v.holder, msg.sender, v.budget);
        _redeem(v, amount, coPayment, msg.sig == this.redeemRefundable.selector, word);
    }

    /// @dev Uses the voucher's nonce and moves `amount`, right after `_voucherRule` (which
    /// applies `_moveRule`, the payment rule, and checks nonce and balance) answered Ok for
    /// this very call: the move skips the hook that would apply the same rule to the same
    /// state a second time. A hot nonce is set in the same ledger write as the debit (see
    /// HOT_NONCES). A refundable redemption also stores what it debited and who made it.
    /// `word` is the holder's ledger word `_voucherRule` read (nothing wrote it since).
    function _redeem(Voucher calldata v, uint256 amount, uint256 coPayment, bool refundable, uint256 word) private {
        address holder = v.holder;
        uint256 budget = v.budget;
        uint256 nonce = v.nonce;
        uint128 nonceBit = 0; // a cold nonce sets no flag in the ledger word
        if (nonce < HOT_NONCES) {
            nonceBit = uint128(uint256(1) << nonce); // nonce < 128
        } else if (!_useColdNonce(holder, budget, nonce)) {
            revert CreditMoveRefused(Reason.NonceUsed, holder, msg.sender, budget); // _voucherRule saw it unused
        }
        if ((word >> 128) & nonceBit != 0) revert CreditMoveRefused(Reason.NonceUsed, holder, msg.sender, budget);
        _moveChecked(holder, msg.sender, budget, amount, nonceBit, word);
        emit TransferSingle(msg.sender, holder, msg.sender, budget, amount);
        emit Redeemed(holder, nonce, coPayment);
        if (refundable) {
            _refundables[holder][budget][nonce] = Refundable(msg.sender, SafeCast.toUint96(amount));
            emit RefundableRedemption(holder, budget, nonce, amount);
        }
        _checkReceiver(holder, msg.sender, budget, amount);
    }

    /// @dev ECDSA first (cheap, and needs no code lookup); ERC-1271 for smart accounts, with
    /// a fixed gas budget (ERC1271_GAS) and at most one word of its answer copied.
    function _isValidSignature(address holder, bytes32 digest, bytes calldata signature) private view returns (bool) {
        // Neither 65 nor 64 bytes: not an ECDSA signature, only ERC-1271 can accept it.
        if (signature.length == 65 || signature.length == 64) {
            bytes32 r = bytes32(signature[0:32]);
            bytes32 s = bytes32(signature[32:64]);
            uint8 v;
            if (signature.length == 65) {
                v = uint8(signature[64]);
            } else {
                // EIP-2098: the top bit of the second word is the y parity, the rest is s.
                v = uint8((uint256(s) >> 255) + 27);
                s &= bytes32(type(uint256).max >> 1);
            }
            // slither-disable-next-line unused-return -- the third value only details an error for reverts
            (address recovered, ECDSA.RecoverError recoverError,) = ECDSA.tryRecover(digest, v, r, s);
            if (recoverError == ECDSA.RecoverError.NoError && recovered == holder && holder != address(0)) return true;
        }
        if (holder.code.length == 0) return false;
        bytes memory data = abi.encodeCall(IERC1271.isValidSignature, (digest, signature));
        return _boundedStaticCall(holder, data, ERC1271_GAS, IERC1271.isValidSignature.selector);
    }

    /// @dev Whether `target` answers `data` with `magic` (a bytes4 in the first word), called
    /// read-only with exactly `gasBudget` gas: reverts if less is left, so a caller cannot
    /// starve the call into a "no". Copies at most one word of the answer.
    function _boundedStaticCall(address target, bytes memory data, uint256 gasBudget, bytes4 magic)
        private
        view
        returns (bool accepted)
    {
        // EIP-150 passes on at most 63/64 of what is left; 5,000 covers the call's own cost.
        uint256 needed = gasBudget + gasBudget / 63 + 5_000;
        if (gasleft() < needed) revert GasBelowCallBudget(gasleft(), needed);
        assembly ("memory-safe") {
            let success := staticcall(gasBudget, target, add(data, 0x20), mload(data), 0x00, 0x20)
            accepted := and(and(success, gt(returndatasize(), 0x1f)), eq(mload(0x00), magic))
        }
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
    /// storage writes and the event, so the per-resident work is assembly. For an address
    /// without code it does exactly what `_enroll` + `_update(address(0), holder, ...)` do:
    ///  - enrolling: the pass slot must be empty (no pass, not a provider's address);
    ///  - crediting: the mint rule of `_moveRule` (an active, unexpired pass);
    ///  - the ledger credit and the `TransferSingle` event.
    /// An address with code (a contract, or an EOA with an EIP-7702 delegation) goes to
    /// `_creditContract`, which asks its acceptance hook and skips it if it refuses.
    /// Budget, cap and pause are checked once per batch by `_openBatch`/`_closeBatch`. Invalid
    /// input (a zero address or amount, a pass that cannot take credit) reverts the whole
    /// batch with the error `_update` would give (`_refuseMint`).
    /// @return count Residents credited. @return total Cents credited.
    function _mintBatch(
        bytes32 batchId,
        uint256 budget,
        address[] calldata holders,
        uint256[] calldata amounts,
        uint40 enrolUntil
    ) private returns (uint256 count, uint256 total) {
        bytes32 ledgerBase = _ledgerBaseSlot(budget);
        bytes32 transferSingle = TransferSingle.selector;
        uint256 newPass = uint256(PassStatus.Active) | (uint256(enrolUntil) << 8); // Pass(Active, enrolUntil)
        uint256 length = holders.length;
        count = length;
        for (uint256 i; i < length;) {
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
                total := add(total, amount) // cannot overflow: each amount < 2**128, count <= 2,000
                if iszero(slowPath) {
                    mstore(0x00, budget)
                    mstore(0x20, amount)
                    log4(0x00, 0x40, transferSingle, caller(), 0, holder)
                }
            }
            if (slowPath) {
                if (!ok) _refuseMint(holder, budget, amount, enrolUntil != 0);
                if (!_contractAccepts(batchId, budget, holder, amount, enrolUntil)) {
                    total -= amount;
                    --count;
                }
            }
            unchecked {
                ++i;
            }
        }
    }

    /// @dev Reverts with the error `_enroll`/`_update` would give for a resident `_mintBatch`
    /// refused; the revert undoes what the loop wrote for it (the ledger credit, and the pass
    /// when the slot was empty). The zero address and the amount are checked first: they do
    /// not depend on those writes. The pass checks are reached only when the pass test itself
    /// failed, and then the loop wrote no pass, so they see the pass as it was.
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

    /// @dev Issuance to an address with code (a contract, or an EOA with an EIP-7702
    /// delegation), which the loop already enrolled (if asked) and credited: asks its ERC-1155
    /// hook, read-only, with ISSUE_HOOK_GAS gas. If it accepts, emits the mint; otherwise takes
    /// back the credit and the enrolment and emits `IssueSkipped`. The hook runs in a static
    /// call, so nothing can have moved the credit in between.
    function _contractAccepts(bytes32 batchId, uint256 budget, address holder, uint256 amount, uint40 enrolUntil)
        private
        returns (bool accepted)
    {
        bytes4 magic = IERC1155Receiver.onERC1155Received.selector;
        bytes memory data;
        assembly ("memory-safe") {
            // onERC1155Received(operator, from = 0, id, value, data = ""): 4 + 6 words
            data := mload(0x40)
            mstore(data, 0xc4)
            mstore(add(data, 0x20), magic)
            mstore(add(data, 0x24), caller())
            mstore(add(data, 0x44), 0)
            mstore(add(data, 0x64), budget)
            mstore(add(data, 0x84), amount)
            mstore(add(data, 0xa4), 0xa0)
            mstore(add(data, 0xc4), 0)
            mstore(0x40, add(data, 0xe4))
        }
        accepted = _boundedStaticCall(holder, data, ISSUE_HOOK_GAS, magic);
        if (!accepted) {
            _undoMint(holder, budget, amount);
            if (enrolUntil != 0) delete passOf[holder];
        }
        bytes32 transferSingle = TransferSingle.selector;
        bytes32 issueSkipped = IssueSkipped.selector;
        assembly ("memory-safe") {
            switch accepted
            case 1 {
                // TransferSingle(operator = caller, from = 0, to = holder, id = budget, value = amount)
                mstore(0x00, budget)
                mstore(0x20, amount)
                log4(0x00, 0x40, transferSingle, caller(), 0, holder)
            }
            default {
                // IssueSkipped(batchId, holder, amount)
                mstore(0x00, amount)
                log3(0x00, 0x20, issueSkipped, batchId, holder)
            }
        }
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

    /// @dev One storage write: every rule reads the flag itself (one cold read per transaction).
    function _setPaused(bool value) private {
        if (paused == value) revert PauseUnchanged(value);
        paused = value;
        emit PauseChanged(value, msg.sender);
    }

    /// @dev Moves `from`'s whole balance of each of `budgetIds` to `to` (a migration), then
    /// asks `to`'s acceptance hook once every balance has moved: a smart account's hook never
    /// sees (or re-enters) a half-migrated list.
    function _moveBalances(address from, address to, uint256[] calldata budgetIds) private {
        uint256 count = budgetIds.length;
        uint256[] memory moved = new uint256[](count);
        for (uint256 i; i < count; ++i) {
            uint256 budget = budgetIds[i];
            uint256 balance = balanceOf(from, budget);
            if (balance == 0) continue; // also a budget listed twice
            moved[i] = balance;
            _update(from, to, budget, balance);
            emit TransferSingle(msg.sender, from, to, budget, balance);
        }
        if (to.code.length == 0) return;
        for (uint256 i; i < count; ++i) {
            if (moved[i] != 0) _checkReceiver(from, to, budgetIds[i], moved[i]);
        }
    }

    /// @dev A provider's public name: 1..MAX_NAME_BYTES bytes of well-formed UTF-8 (no
    /// overlong forms, no surrogates, nothing above U+10FFFF) without control characters
    /// (C0, DEL, C1), so every explorer and report shows it as typed.
    function _checkName(string calldata name) private pure {
        bool valid;
        uint256 maxBytes = MAX_NAME_BYTES;
        assembly ("memory-safe") {
            let p := name.offset
            let end := add(p, name.length)
            valid := and(gt(name.length, 0), iszero(gt(name.length, maxBytes)))
            for {} and(valid, lt(p, end)) {} {
                let c := byte(0, calldataload(p))
                switch lt(c, 0x80)
                case 1 {
                    valid := and(gt(c, 0x1f), iszero(eq(c, 0x7f)))
                    p := add(p, 1)
                }
                default {
                    let extra := 0 // continuation bytes
                    let lo := 0x80 // bounds of the first continuation byte
                    let hi := 0xbf
                    if and(gt(c, 0xc1), lt(c, 0xe0)) {
                        extra := 1
                        if eq(c, 0xc2) { lo := 0xa0 } // C1 controls U+0080..U+009F
                    }
                    if and(gt(c, 0xdf), lt(c, 0xf0)) {
                        extra := 2
                        if eq(c, 0xe0) { lo := 0xa0 } // overlong
                        if eq(c, 0xed) { hi := 0x9f } // surrogates
                    }
                    if and(gt(c, 0xef), lt(c, 0xf5)) {
                        extra := 3
                        if eq(c, 0xf0) { lo := 0x90 } // overlong
                        if eq(c, 0xf4) { hi := 0x8f } // above U+10FFFF
                    }
                    valid := and(gt(extra, 0), lt(add(p, extra), end)) // a lead byte, not cut off
                    let word := calldataload(p)
                    let c1 := byte(1, word)
                    valid := and(valid, and(iszero(lt(c1, lo)), iszero(gt(c1, hi))))
                    for { let j := 2 } and(valid, iszero(gt(j, extra))) { j := add(j, 1) } {
                        valid := eq(and(byte(j, word), 0xc0), 0x80)
                    }
                    p := add(p, add(extra, 1))
                }
            }
        }
        if (!valid) revert InvalidName();
    }
}
