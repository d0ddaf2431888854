"""One blueprint per noun: auth, portal, account, support, webhooks, health, dev."""
