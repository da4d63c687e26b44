"""`retailpulse serve`: the HTTP front end. Routes parse a request, call one use case in
`retailpulse_cli.jobs`, and render JSON; no job logic lives here."""
