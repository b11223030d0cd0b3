// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice What a resident signs (EIP-712): a spending limit the till fills in. The provider
/// types the amount (1..maxAmount cents) and the co-payment when it redeems the voucher.
struct Voucher {
    address holder; // the pass holder's address (an EOA or an ERC-1271 smart account)
    address provider; // the one provider allowed to redeem it; address(0) = any provider approved for the category
    uint256 budget; // ERC-1155 id of the budget the credit comes from
    uint256 maxAmount; // euro cents: the most the provider may take with this voucher
    uint256 nonce; // unordered: any unused number; one redemption uses it up, whatever the amount
    uint256 deadline; // unix seconds; the voucher is void after it
}

/// @title VoucherHash
/// @notice EIP-712 struct hash of a voucher, next to its type string.
library VoucherHash {
    bytes32 internal constant VOUCHER_TYPEHASH = keccak256(
        "Voucher(address holder,address provider,uint256 budget,uint256 maxAmount,uint256 nonce,uint256 deadline)"
    );

    /// @dev The struct's six static fields are, in calldata, exactly its EIP-712 encoding, so
    /// they are hashed in place. Dirty address bits only change the digest (the signature then
    /// fails); reading `v.holder` in Solidity reverts on them anyway.
    function hash(Voucher calldata v) internal pure returns (bytes32 h) {
        bytes32 typeHash = VOUCHER_TYPEHASH;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, typeHash)
            calldatacopy(add(ptr, 0x20), v, 0xc0)
            h := keccak256(ptr, 0xe0)
        }
    }
}
