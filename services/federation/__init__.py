"""Federation: ClientGate as the sign-in of other apps (forward-auth, OpenID Connect)."""
