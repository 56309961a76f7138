"""The staff web console: server-rendered pages for property staff, made lively with htmx.

Its front-end packages come from `package-lock.json` beside this file and are installed into
`node_modules/` by `make console-assets` (never a CDN, never copied into the repository);
`assets.py` names the files the console serves from there.
"""
