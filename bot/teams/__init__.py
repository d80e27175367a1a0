"""Teams adapter: every botbuilder import lives in this package (CloudAdapter, auth, invoke shim, posting)."""
