// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ICityPass} from "./ICityPass.sol";
import {Vm, HEVM_ADDRESS} from "./Vm.sol";

/// @title Pause and unpause cost the same whatever the number of providers
/// @notice Two contracts in the same state except for their provider count (1 and
/// CITYPASS_PAUSE_PROVIDERS, 1,000 by default; `make fuzz` runs 10,000): pause and unpause
/// must use exactly the same gas in both, and fit 100,000 gas. A pauser's emergency stop
/// must not be something a provider manager can price out of a block.
contract PauseGasTest {
    Vm internal constant vm = Vm(HEVM_ADDRESS);
    uint256 internal constant PAUSE_GAS = 100_000;

    event Gas(string what, uint256 providers, uint256 gas);

    function test_pauseGasDoesNotGrowWithProviders() public {
        uint256 many = vm.envOr("CITYPASS_PAUSE_PROVIDERS", uint256(1_000));
        ICityPass few = _cityWith(1);
        ICityPass lots = _cityWith(many);
        // Every access below is a first (cold) access to its contract, in both cases.
        (uint256 pauseFew, uint256 unpauseFew) = _pauseAndUnpause(few);
        (uint256 pauseLots, uint256 unpauseLots) = _pauseAndUnpause(lots);
        emit Gas("pause", 1, pauseFew);
        emit Gas("pause", many, pauseLots);
        emit Gas("unpause", many, unpauseLots);
        require(pauseLots == pauseFew && unpauseLots == unpauseFew, "pause/unpause gas grows with the provider count");
        require(pauseLots <= PAUSE_GAS && unpauseLots <= PAUSE_GAS, "pause/unpause above 100,000 gas");
    }

    /// @notice While paused, a provider manager adding providers cannot make unpause harder.
    function test_addProviderWhilePausedDoesNotBlockUnpause() public {
        ICityPass city = _cityWith(1);
        city.pause();
        for (uint256 i; i < 200; ++i) {
            city.addProvider(address(uint160(0x20000 + i)), 1, 0, "late provider");
        }
        uint256 before = gasleft();
        city.unpause();
        uint256 used = before - gasleft();
        require(!city.paused() && used <= PAUSE_GAS, "unpause after providers were added while paused");
    }

    function _cityWith(uint256 providers) internal returns (ICityPass city) {
        address me = address(this);
        city = ICityPass(vm.deployCode("CityPass.sol:CityPass", abi.encode(uint48(0), me, [me, me, me, me, me, me], "")));
        for (uint256 i; i < providers; ++i) {
            city.addProvider(address(uint160(0x10000 + i)), 1, 0, "provider");
        }
    }

    function _pauseAndUnpause(ICityPass city) internal returns (uint256 pauseGas, uint256 unpauseGas) {
        uint256 g = gasleft();
        city.pause();
        pauseGas = g - gasleft();
        g = gasleft();
        city.unpause();
        unpauseGas = g - gasleft();
    }
}
