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

    /// @notice A batch transfer lists the same id twice.
    error DuplicateId(uint256 id);

    /// @dev One word per (id, account): the balance in the low 128 bits and, in the high 128
    /// bits, flags the inheriting contract may use. CityPass keeps a holder's voucher nonces
    /// for a budget there, so a redemption reads and writes one slot for the replay check and
    /// the debit. Balances never reach 2**128: every id's supply is capped by a uint128.
    mapping(uint256 id => mapping(address account => uint256 word)) private _ledger;

    uint256 private constant _BALANCE_MASK = type(uint128).max;

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
        return _ledger[id][account] & _BALANCE_MASK;
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
            balances[i] = _ledger[ids[i]][accounts[i]] & _BALANCE_MASK;
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
        if (from == address(0)) revert ERC1155InvalidSender(address(0)); // only in eth_call: no mint path here
        if (to == address(0)) revert ERC1155InvalidReceiver(address(0));
        _update(from, to, id, value);
        emit TransferSingle(msg.sender, from, to, id, value);
        ERC1155Utils.checkOnERC1155Received(msg.sender, from, to, id, value, data);
    }

    /// @notice Batched `safeTransferFrom`; every id obeys the same rules. Each id at most once;
    /// an empty batch is refused.
    function safeBatchTransferFrom(
        address from,
        address to,
        uint256[] calldata ids,
        uint256[] calldata values,
        bytes calldata data
    ) public virtual {
        if (from != msg.sender) revert ERC1155MissingApprovalForAll(msg.sender, from);
        if (from == address(0)) revert ERC1155InvalidSender(address(0));
        if (to == address(0)) revert ERC1155InvalidReceiver(address(0));
        if (ids.length != values.length || ids.length == 0) revert ERC1155InvalidArrayLength(ids.length, values.length);
        for (uint256 i; i < ids.length; ++i) {
            // One entry per id, so per-transfer rules (e.g. a limit per payment) see the
            // whole amount of that id.
            for (uint256 j; j < i; ++j) {
                if (ids[j] == ids[i]) revert DuplicateId(ids[i]);
            }
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
        _move(from, to, id, value, 0);
    }

    /// @dev `_update` without `_checkMove`, for a caller that has just applied the very same
    /// rule to the very same state (CityPass's redemption, after its pre-check), and that also
    /// sets `senderFlags` in the sender's ledger slot, in the same storage write as the debit.
    /// `fromWord` is `from`'s ledger word as the caller read it in this call, with nothing
    /// written since; the caller checked `value` <= its balance (so neither can fail here).
    function _moveChecked(address from, address to, uint256 id, uint256 value, uint128 senderFlags, uint256 fromWord)
        internal
        virtual
    {
        unchecked {
            _ledger[id][from] = (fromWord | (uint256(senderFlags) << 128)) - value;
            _ledger[id][to] += value; // bounded by the uint128 issuance cap, as in _move
        }
    }

    function _move(address from, address to, uint256 id, uint256 value, uint128 senderFlags) private {
        if (value > type(uint128).max) revert ERC1155InsufficientBalance(from, 0, value, id);
        if (from != address(0)) {
            uint256 word = _ledger[id][from];
            uint256 balance = word & _BALANCE_MASK;
            if (balance < value) revert ERC1155InsufficientBalance(from, balance, value, id);
            unchecked {
                _ledger[id][from] = (word | (uint256(senderFlags) << 128)) - value;
            }
        }
        if (to != address(0)) {
            // Cannot carry into the flags: an id's supply is bounded by its uint128 issuance
            // cap, checked at the end of every issuance batch (which reverts as a whole).
            unchecked {
                _ledger[id][to] += value;
            }
        }
    }

    /// @dev Takes back a credit made earlier in the same transaction, when the recipient
    /// refused it (only a static call ran in between, so nothing can have moved it: see
    /// CityPass._contractAccepts). Emits nothing, like `_update`.
    function _undoMint(address account, uint256 id, uint256 value) internal virtual {
        unchecked {
            _ledger[id][account] -= value;
        }
    }

    /// @dev Storage slot of the inner mapping `_ledger[id]`: account `a`'s word for `id` is at
    /// keccak256(abi.encode(a, _ledgerBaseSlot(id))). For loops that credit many accounts.
    function _ledgerBaseSlot(uint256 id) internal pure returns (bytes32 base) {
        assembly ("memory-safe") {
            mstore(0x00, id)
            mstore(0x20, _ledger.slot)
            base := keccak256(0x00, 0x40)
        }
    }

    /// @dev The whole ledger word of (`id`, `account`): flags in the high, balance in the low 128 bits.
    function _ledgerWord(uint256 id, address account) internal view returns (uint256) {
        return _ledger[id][account];
    }

    /// @dev The flags of (`id`, `account`) (see `_ledger`).
    function _flagsOf(uint256 id, address account) internal view returns (uint128) {
        return uint128(_ledger[id][account] >> 128);
    }

    /// @dev Reverts if moving `value` of `id` from `from` to `to` breaks a rule.
    function _checkMove(address from, address to, uint256 id, uint256 value) internal view virtual;
}
