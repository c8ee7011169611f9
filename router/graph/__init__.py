"""Microsoft Graph (graph:// inbox and relay): the HTTP client, throttling gates and folders."""
