"""Microsoft Graph adapter: webhooks, subscriptions, delta catch-up, message reads and flag writes."""
