// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice The few forge cheatcodes the suite uses (forge-std is not on npm, so they are
/// declared here). Forge answers calls to this address itself.
interface Vm {
    function warp(uint256 timestamp) external;
    function prank(address sender) external;
    function startPrank(address sender) external;
    function stopPrank() external;
    function addr(uint256 privateKey) external pure returns (address);
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);
    function label(address account, string calldata name) external;
    function envOr(string calldata name, uint256 defaultValue) external view returns (uint256 value);
    function deployCode(string calldata artifactPath, bytes calldata constructorArgs) external returns (address deployed);
}

/// @dev keccak256("hevm cheat code") truncated to 20 bytes, as forge-std's `VM_ADDRESS`.
address constant HEVM_ADDRESS = address(uint160(uint256(keccak256("hevm cheat code"))));

/// @notice What `targetSelectors` returns: which functions of `addr` the fuzzer may call
/// (the struct forge reads, as forge-std's StdInvariant declares it).
struct FuzzSelector {
    address addr;
    bytes4[] selectors;
}
