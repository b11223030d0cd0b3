// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC1155} from "@openzeppelin/contracts/token/ERC1155/ERC1155.sol";

/// @notice Benchmark baseline only (never deployed for real): OpenZeppelin's ERC-1155 with a
/// plain mint loop, the way a team would airdrop credit with an off-the-shelf token. It
/// checks nothing about the recipients, which is exactly what CityPass adds.
contract BaselineERC1155 is ERC1155 {
    address public immutable minter;

    constructor() ERC1155("") {
        minter = msg.sender;
    }

    function mintMany(uint256 id, address[] calldata holders, uint256[] calldata amounts) external {
        require(msg.sender == minter, "not minter");
        for (uint256 i; i < holders.length; ++i) {
            _mint(holders[i], id, amounts[i], "");
        }
    }
}
