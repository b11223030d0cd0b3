// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title BudgetId
/// @notice A budget's ERC-1155 token id carries its own terms, so a redemption can check the
/// category and the validity window without a storage read (saves 2,100 gas per scan):
///
///   bits 128..159  serial       (1, 2, 3, ... in order of creation)
///   bits  80..87   category     (0..63; a provider's approvals are a 64-bit mask)
///   bits  40..79   validFrom    (unix seconds, inclusive)
///   bits   0..39   validUntil   (unix seconds, inclusive)
///
/// The terms are therefore immutable: a budget whose window must change is a new budget.
/// Ids are only valid once `CityPass.createBudget` registered them.
library BudgetId {
    uint256 internal constant MAX_CATEGORY = 63;

    function encode(uint32 serial_, uint8 category_, uint40 validFrom_, uint40 validUntil_)
        internal
        pure
        returns (uint256)
    {
        return (uint256(serial_) << 128) | (uint256(category_) << 80) | (uint256(validFrom_) << 40)
            | uint256(validUntil_);
    }

    function serial(uint256 id) internal pure returns (uint32) {
        return uint32(id >> 128);
    }

    function category(uint256 id) internal pure returns (uint8) {
        return uint8(id >> 80);
    }

    function validFrom(uint256 id) internal pure returns (uint40) {
        return uint40(id >> 40);
    }

    function validUntil(uint256 id) internal pure returns (uint40) {
        return uint40(id);
    }
}
