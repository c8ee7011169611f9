"""The operations console: web pages for the Prevent team and admins (ROUTER_CONSOLE)."""
