// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @notice Benchmark baseline only: OpenZeppelin's ERC-20 with EIP-2612 permit, the usual way
/// to let a resident sign a payment that somebody else submits.
contract BaselineERC20Permit is ERC20, ERC20Permit {
    address public immutable minter;

    constructor() ERC20("Baseline credit", "BASE") ERC20Permit("Baseline credit") {
        minter = msg.sender;
    }

    function mint(address to, uint256 amount) external {
        require(msg.sender == minter, "not minter");
        _mint(to, amount);
    }
}

/// @notice The relayer a provider would run: submits the resident's permit and pulls the
/// payment to the provider in one transaction (the relayer is the permit's spender).
contract BaselinePermitRelayer {
    function permitAndPay(
        ERC20Permit token,
        address holder,
        address provider,
        uint256 amount,
        uint256 deadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        token.permit(holder, address(this), amount, deadline, v, r, s);
        require(ERC20(address(token)).transferFrom(holder, provider, amount), "transfer failed");
    }
}
