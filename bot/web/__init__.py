"""The bot's own HTTP endpoints that speak no other system's protocol (the voicemail link)."""
