// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice The v2 voucher (EIP-712 type `Voucher(address holder,address provider,uint256 budget,
/// uint256 maxAmount,uint256 nonce,uint256 deadline)`, domain "CityPass" version "2").
struct Voucher {
    address holder;
    address provider; // address(0): any provider approved for the budget's category
    uint256 budget;
    uint256 maxAmount;
    uint256 nonce;
    uint256 deadline;
}

/// @notice The part of CityPass's ABI the invariant suite drives (/work/wt/V2-SPEC.md), written
/// as an interface so the handler codes against the ABI, not against the contract's internals.
/// Enums travel as uint8: ProviderStatus {None, Active, Suspended, Removed}, PassStatus {None,
/// Active, Suspended, Revoked, Migrated, Provider}.
interface ICityPass {
    // budgets
    function createBudget(uint8 category, uint40 validFrom, uint40 validUntil, uint128 cap, string calldata name)
        external
        returns (uint256 budget);
    function setBudgetCap(uint256 budget, uint128 cap) external;
    function budgetTotals(uint256 budget)
        external
        view
        returns (uint128 cap, uint128 issued, uint128 settled, uint128 reclaimed, uint128 corrected);

    // providers
    function addProvider(address provider, uint64 categories, uint128 maxAmount, string calldata name) external;
    function updateProvider(address provider, uint64 categories, uint128 maxAmount) external;
    function setProviderStatus(address provider, uint8 status) external;
    function providerOf(address provider) external view returns (uint8 status, uint64 categories, uint128 maxAmount);

    // passes
    function enrollPasses(address[] calldata holders, uint40 validUntil) external;
    function renewPasses(address[] calldata holders, uint40 validUntil) external;
    function suspendPass(address holder) external;
    function reinstatePass(address holder) external;
    function revokePass(address holder) external;
    function migratePass(address from, address to, uint256[] calldata budgetIds) external;
    function migrateBalances(address from, uint256[] calldata budgetIds) external;
    function currentAddress(address holder) external view returns (address);
    function passOf(address holder) external view returns (uint8 status, uint40 validUntil);

    // issuance and correction
    function issue(bytes32 batchId, uint256 budget, address[] calldata holders, uint256[] calldata amounts) external;
    function enrollAndIssue(
        bytes32 batchId,
        uint256 budget,
        uint40 passValidUntil,
        address[] calldata holders,
        uint256[] calldata amounts
    ) external;
    function correct(address holder, uint256 budget, uint256 amount, string calldata why) external;

    // redemption and refunds
    function domainSeparator() external view returns (bytes32);
    function redeem(Voucher calldata v, bytes calldata signature, uint256 amount, uint256 coPayment) external;
    function redeemRefundable(Voucher calldata v, bytes calldata signature, uint256 amount, uint256 coPayment)
        external;
    function redeemBatch(
        Voucher[] calldata vouchers,
        bytes[] calldata signatures,
        uint256[] calldata amounts,
        uint256[] calldata coPayments
    ) external returns (uint256 redeemed);
    function refund(address holder, uint256 budget, uint256 nonce, uint256 amount) external;
    function refundableOf(address holder, uint256 budget, uint256 nonce)
        external
        view
        returns (address provider, uint256 remaining);
    function isNonceUsed(address holder, uint256 budget, uint256 nonce) external view returns (bool);
    function hotNonces(address holder, uint256 budget) external view returns (uint256);

    // end of a budget, settlement, pause
    function reclaim(uint256 budget, address[] calldata holders) external;
    function settle(address provider, uint256[] calldata budgetIds, uint256[] calldata amounts, string calldata paymentRef)
        external;
    function pause() external;
    function unpause() external;
    function paused() external view returns (bool);

    // ERC-1155
    function balanceOf(address account, uint256 id) external view returns (uint256);
    function safeTransferFrom(address from, address to, uint256 id, uint256 value, bytes calldata data) external;
}
