// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {ERC1155Holder} from "@openzeppelin/contracts/token/ERC1155/utils/ERC1155Holder.sol";
import {IERC1155} from "@openzeppelin/contracts/token/ERC1155/IERC1155.sol";

/// @dev Test double for a resident's smart account: accepts a signature made by its owner key
/// (ERC-1271) and accepts ERC-1155 credit.
contract SmartAccountMock is IERC1271, ERC1155Holder {
    address public immutable owner;

    constructor(address owner_) {
        owner = owner_;
    }

    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(hash, signature);
        return err == ECDSA.RecoverError.NoError && signer == owner ? IERC1271.isValidSignature.selector : bytes4(0);
    }
}

/// @dev Test double for a contract that cannot take ERC-1155 tokens.
contract NonReceiverMock {}

/// @dev Test double for a smart account that, whenever credit arrives, adds up what the sender
/// still holds of the watched budgets: a migration must have moved everything before it asks.
contract MigrationWitnessMock is ERC1155Holder {
    uint256[] private _watched;
    uint256 public leftWithSender;
    uint256 public calls;

    constructor(uint256[] memory watched) {
        _watched = watched;
    }

    function onERC1155Received(address operator, address from, uint256 id, uint256 value, bytes memory data)
        public
        override
        returns (bytes4)
    {
        for (uint256 i; i < _watched.length; ++i) {
            leftWithSender += IERC1155(msg.sender).balanceOf(from, _watched[i]);
        }
        ++calls;
        return super.onERC1155Received(operator, from, id, value, data);
    }
}

/// @dev Test double for a resident contract whose ERC-1155 hook always reverts.
contract RevertingReceiverMock {
    function onERC1155Received(address, address, uint256, uint256, bytes calldata) external pure returns (bytes4) {
        revert("no credit for me");
    }
}

/// @dev Test double for a resident contract whose ERC-1155 hook burns all the gas it gets.
contract GasBurnerReceiverMock {
    function onERC1155Received(address, address, uint256, uint256, bytes calldata) external pure returns (bytes4) {
        uint256 x;
        while (true) {
            unchecked {
                ++x;
            }
        }
        return bytes4(uint32(x));
    }
}

/// @dev Test double for a resident smart account whose ERC-1271 check burns all the gas it gets.
contract GasBurner1271Mock is ERC1155Holder {
    function isValidSignature(bytes32, bytes calldata) external pure returns (bytes4) {
        uint256 x;
        while (true) {
            unchecked {
                ++x;
            }
        }
        return bytes4(uint32(x));
    }
}

/// @dev Test double for a smart account that answers the ERC-1271 magic value followed by a
/// megabyte of return data (the contract copies one word).
contract HugeAnswer1271Mock is ERC1155Holder {
    function isValidSignature(bytes32, bytes calldata) external pure returns (bytes4) {
        assembly {
            mstore(0, 0x1626ba7e00000000000000000000000000000000000000000000000000000000)
            return(0, 100000)
        }
    }
}
