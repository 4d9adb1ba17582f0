"""Blocks C/D: authorizing idTokens (Authorize, local list, auth cache and its policy)."""
