// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC1155} from "@openzeppelin/contracts/token/ERC1155/IERC1155.sol";
import {IERC1155MetadataURI} from "@openzeppelin/contracts/token/ERC1155/extensions/IERC1155MetadataURI.sol";
import {ERC1155Utils} from "@openzeppelin/contracts/token/ERC1155/utils/ERC1155Utils.sol";
import {IERC1155Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {ERC165, IERC165} from "@openzeppelin/contracts/utils/introspection/ERC165.sol";

/// @title RestrictedERC1155
/// @notice A lean ERC-1155 whose every balance change passes through one hook, `_update`,
/// where the inheriting contract decides whether the move is allowed.
/// @dev Differences from OpenZeppelin's ERC1155, each deliberate:
///  - `_update` moves a single id, so issuance loops do not allocate singleton arrays
///    (OpenZeppelin's `_mint` does, and the memory growth costs ~1,000 gas per recipient
///    in a batch of 500).
///  - Operator approvals are disabled: `setApprovalForAll` reverts and `isApprovedForAll`
///    is always false, so no third party can ever move a holder's credit.
///  - Events are emitted by the callers of `_update`, so a batch transfer emits one
///    `TransferBatch` as the standard asks.
abstract contract RestrictedERC1155 is ERC165, IERC1155, IERC1155MetadataURI, IERC1155Errors {
    /// @notice Operator approvals are not part of this token: credit can only be moved by its owner.
    error ApprovalsDisabled();

    mapping(uint256 id => mapping(address account => uint256)) private _balances;

    string private _uri;

    constructor(string memory uri_) {
        _uri = uri_;
    }

    /// @inheritdoc IERC165
    function supportsInterface(bytes4 interfaceId) public view virtual override(ERC165, IERC165) returns (bool) {
        return interfaceId == type(IERC1155).interfaceId || interfaceId == type(IERC1155MetadataURI).interfaceId
            || super.supportsInterface(interfaceId);
    }

    /// @notice Metadata URI template for every budget id (ERC-1155 `{id}` substitution).
    function uri(uint256) public view virtual returns (string memory) {
        return _uri;
    }

    /// @notice Credit of `account` in budget `id`, in euro cents.
    function balanceOf(address account, uint256 id) public view virtual returns (uint256) {
        return _balances[id][account];
    }

    /// @notice Batched `balanceOf`.
    function balanceOfBatch(address[] calldata accounts, uint256[] calldata ids)
        public
        view
        virtual
        returns (uint256[] memory balances)
    {
        if (accounts.length != ids.length) revert ERC1155InvalidArrayLength(ids.length, accounts.length);
        balances = new uint256[](accounts.length);
        for (uint256 i; i < accounts.length; ++i) {
            balances[i] = _balances[ids[i]][accounts[i]];
        }
    }

    /// @notice Always reverts: approvals would let a third party move a resident's credit.
    function setApprovalForAll(address, bool) public pure virtual {
        revert ApprovalsDisabled();
    }

    /// @notice Always false: see `setApprovalForAll`.
    function isApprovedForAll(address, address) public pure virtual returns (bool) {
        return false;
    }

    /// @notice Moves `value` of budget `id` from the caller to `to`, if the transfer rules allow it.
    /// @dev `from` must be the caller: there are no operators.
    function safeTransferFrom(address from, address to, uint256 id, uint256 value, bytes calldata data)
        public
        virtual
    {
        if (from != msg.sender) revert ERC1155MissingApprovalForAll(msg.sender, from);
        if (to == address(0)) revert ERC1155InvalidReceiver(address(0));
        _update(from, to, id, value);
        emit TransferSingle(msg.sender, from, to, id, value);
        ERC1155Utils.checkOnERC1155Received(msg.sender, from, to, id, value, data);
    }

    /// @notice Batched `safeTransferFrom`; every id obeys the same rules.
    function safeBatchTransferFrom(
        address from,
        address to,
        uint256[] calldata ids,
        uint256[] calldata values,
        bytes calldata data
    ) public virtual {
        if (from != msg.sender) revert ERC1155MissingApprovalForAll(msg.sender, from);
        if (to == address(0)) revert ERC1155InvalidReceiver(address(0));
        if (ids.length != values.length) revert ERC1155InvalidArrayLength(ids.length, values.length);
        for (uint256 i; i < ids.length; ++i) {
            _update(from, to, ids[i], values[i]);
        }
        emit TransferBatch(msg.sender, from, to, ids, values);
        ERC1155Utils.checkOnERC1155BatchReceived(msg.sender, from, to, ids, values, data);
    }

    /// @dev The one place where balances change. Mint: `from == 0`; burn: `to == 0`.
    /// Calls `_checkMove` first, so an inheriting contract enforces its rules on every path.
    /// Emits nothing: callers emit `TransferSingle`/`TransferBatch`.
    function _update(address from, address to, uint256 id, uint256 value) internal virtual {
        _checkMove(from, to, id, value);
        if (from != address(0)) {
            uint256 fromBalance = _balances[id][from];
            if (fromBalance < value) revert ERC1155InsufficientBalance(from, fromBalance, value, id);
            unchecked {
                _balances[id][from] = fromBalance - value;
            }
        }
        if (to != address(0)) {
            // Cannot overflow: every id's supply is bounded by its uint128 issuance cap.
            unchecked {
                _balances[id][to] += value;
            }
        }
    }

    /// @dev Reverts if moving `value` of `id` from `from` to `to` breaks a rule.
    function _checkMove(address from, address to, uint256 id, uint256 value) internal view virtual;
}
