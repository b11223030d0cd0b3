import time, gc
from brownie import chain, web3

def test_speed(cp):
    t=time.time()
    for i in range(5):
        chain.snapshot(); chain.revert()
    print("before freeze", (time.time()-t)/5, gc.get_count(), len(gc.get_objects()))
    gc.freeze()
    t=time.time()
    for i in range(5):
        chain.snapshot(); chain.revert()
    print("after freeze", (time.time()-t)/5)
