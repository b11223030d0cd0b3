// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm, HEVM_ADDRESS, FuzzSelector} from "./Vm.sol";
import {ICityPass} from "./ICityPass.sol";
import {Handler} from "./Handler.sol";

/// @title The CityPass invariants, checked by forge after every call of every run
/// @notice Forge calls random sequences of the handler's actions (see Handler) on one
/// CityPass and, after each call, `invariant_cityPass`. The campaign's size is set in
/// foundry.toml (`make test`: 256 runs x depth 50; `make fuzz`: depth 500).
contract CityPassInvariants {
    Vm internal constant vm = Vm(HEVM_ADDRESS);
    Handler internal handler;
    ICityPass internal city;

    function setUp() public {
        handler = new Handler();
        address h = address(handler);
        // The handler holds every operator role; the test contract is the default admin.
        city = ICityPass(vm.deployCode(
            "CityPass.sol:CityPass",
            abi.encode(uint48(0), address(this), [h, h, h, h, h, h], "https://citypass.example/{id}.json")
        ));
        handler.init(city);
    }

    /// @notice Forge fuzzes only the handler ...
    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// @notice ... and only its actions (not init, the checks or the getters).
    function targetSelectors() public view returns (FuzzSelector[] memory targets) {
        targets = new FuzzSelector[](1);
        targets[0] = FuzzSelector(address(handler), handler.actions());
    }

    /// @notice Every invariant, in one function so that one campaign checks them all after
    /// each call (forge runs a campaign per invariant function). The revert message names
    /// the invariant that broke.
    function invariant_cityPass() public {
        handler.checkConservation(); // issued = held + settled + reclaimed + corrected, per budget
        handler.checkNonces(); // every used nonce stays used, each redeemed once
        handler.checkRefunds(); // refunds of a redemption <= what it debited; only refundable scans
        handler.checkResidentBound(); // held <= issued - spent + own refunds, per resident and budget
        handler.checkPause(); // no credit moved in a call made while paused
        handler.checkEffects(); // every accepted call moved exactly what it asked
        handler.checkPauseStaysPossible(); // pause and unpause fit a fixed gas budget
    }
}
