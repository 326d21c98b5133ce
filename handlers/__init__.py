"""One module per capability. Handlers speak neutral events, views and storage only."""
