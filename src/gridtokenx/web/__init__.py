"""The web dashboard: static assets served by the app itself, working offline."""
