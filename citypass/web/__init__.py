"""`citypass web`: the till (and later the pass and the dashboard) with a JSON API over the
library and an RPC endpoint for browser wallets. The server holds no key and never writes
to the chain; wallets sign in the browser.

    citypass/web/app.py       the routes (one table)
    citypass/web/api.py       the JSON API handlers
    citypass/web/rpc.py       the wallet RPC endpoint (an allow-list)
    citypass/web/security.py  Host check, content type, limits, headers, the dev-key bind check
    citypass/web/auth.py      signed requests (a holder's history)
    citypass/web/vouchers.py  the voucher-dependent part (pass QR, checkVoucher) in one place
    citypass/web/i18n.py      what the till says, Dutch and English
    citypass/web/server.py    start-up: connect, check, serve with uvicorn
"""
