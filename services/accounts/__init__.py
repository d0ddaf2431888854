"""Accounts without a shell: invitations, password resets and changes, email changes,
the client's own devices, and staff turning accounts off and on.

tokens      single-use links (invitation, reset, email proof), stored only as hashes
policy      the password rules (NIST SP 800-63B), the same for the browser and the CLI
lifecycle   setting a password, deactivating and reactivating, with notices
invitations inviting clients one at a time or from a CSV
email_change proving a new sign-in address before it replaces the old one
devices     where a client is signed in, and signing out everywhere else
"""
