// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice What a resident signs at the till (EIP-712). `provider` is not sent to the
/// contract: it is the submitting wallet, so a voucher only works for the provider it names.
struct Voucher {
    address holder; // the pass holder's address (an EOA or an ERC-1271 smart account)
    uint256 budget; // ERC-1155 id of the budget the credit comes from
    uint256 amount; // euro cents taken from the credit
    uint256 coPayment; // euro cents the resident pays on top, recorded for the municipality
    uint256 nonce; // unordered: any unused number; the app takes the lowest free one
    uint256 deadline; // unix seconds; the voucher is void after it
}

/// @title VoucherHash
/// @notice EIP-712 struct hash of a voucher, next to its type string.
library VoucherHash {
    bytes32 internal constant VOUCHER_TYPEHASH = keccak256(
        "Voucher(address holder,address provider,uint256 budget,uint256 amount,uint256 coPayment,uint256 nonce,uint256 deadline)"
    );

    function hash(Voucher calldata v, address provider) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(VOUCHER_TYPEHASH, v.holder, provider, v.budget, v.amount, v.coPayment, v.nonce, v.deadline)
        );
    }
}
