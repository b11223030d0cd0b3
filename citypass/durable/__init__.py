"""The embedded chain keeps what it confirmed: one supervisor process per work directory
owns the embedded Anvil, a journal of every write that passed through it and atomic
snapshots (citypass/durable/supervisor.py). Every client reaches the chain through the
supervisor's JSON-RPC endpoint; Anvil itself listens on a private loopback port.

Files in `<workdir>/chain/`:
    snap-<gen>.json      Anvil's own state (anvil_dumpState, unzipped) + a "citypass" key
    journal-<gen>.jsonl  everything since snap-<gen> (or since genesis for gen 0)
Each journal line is one JSON object, fsynced before the call it records is forwarded
(`tx`, `rpc`, `mode`) or before a receipt is handed out (`b`: a mined block).
"""
